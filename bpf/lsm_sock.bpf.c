// SPDX-License-Identifier: GPL-2.0-only
/*
 * Socket rules for the families the cgroup sock_create hook never sees (packet, netlink,
 * unix, ...): LSM socket_create. inet and inet6 are left to the cgroup program, so every
 * socket() is decided, and counted, once. Sockets the kernel makes for itself are skipped.
 * The container is found as every other program finds it (current_container): a process in
 * a child cgroup the container made for itself is judged as the container, and one that
 * has not been registered yet by the every-container ruleset.
 */
#include "sock_rules.h"

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/socket_create")
int BPF_PROG(enforcer_socket_create, int family, int type, int protocol, int kern, int ret)
{
	struct container *ct;
	__u64 cgid = 0;

	if (ret)
		return ret; /* an earlier LSM already denied */
	if (kern || family == AF_INET || family == AF_INET6)
		return 0;
	ct = current_or_starting_container(&cgid);
	if (!ct || !(ct->flags & CT_SOCK_RULES))
		return 0;
	return decide_socket(ct, cgid, family, type, protocol) == ACT_DENY ? -EPERM : 0;
}
