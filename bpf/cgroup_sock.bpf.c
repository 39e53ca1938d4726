// SPDX-License-Identifier: GPL-2.0-only
/*
 * Socket rules: cgroup/sock_create on every container's cgroup, by family and type.
 *
 * The kernel runs this hook for the inet families (AF_INET, AF_INET6) only; rules for
 * other families (packet, netlink, ...) are the LSM socket_create program's (lsm_sock).
 */
#include "sock_rules.h"

char LICENSE[] SEC("license") = "GPL";

SEC("cgroup/sock_create")
int enforcer_sock_create(struct bpf_sock *ctx)
{
	struct container *ct;
	__u64 cgid = 0;

	ct = current_container(&cgid);
	if (!ct || !(ct->flags & CT_SOCK_RULES))
		return 1;
	return decide_socket(ct, cgid, ctx->family, ctx->type, ctx->protocol) == ACT_DENY ? 0 : 1;
}
