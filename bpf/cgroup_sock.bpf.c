// SPDX-License-Identifier: GPL-2.0-only
/*
 * Socket rules: cgroup/sock_create on every container's cgroup, by family and type.
 *
 * The kernel runs this hook for the inet families (AF_INET, AF_INET6) only; rules for
 * other families (packet, netlink, ...) are the LSM socket_create program's.
 * (family, type) is looked up first, then (family, any type): the rule naming the type
 * is the more specific one.
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_SOCK_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sock_key);
	__type(value, struct sock_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_rules SEC(".maps");

SEC("cgroup/sock_create")
int enforcer_sock_create(struct bpf_sock *ctx)
{
	struct sock_key k = {};
	struct sock_event ev;
	struct container *ct;
	struct sock_rule *r;
	__u64 cgid = 0;

	ct = current_container(&cgid);
	if (!ct || !(ct->flags & CT_SOCK_RULES))
		return 1;
	k.ruleset = ct->ruleset;
	k.family = ctx->family;
	k.type = ctx->type;
	r = bpf_map_lookup_elem(&sock_rules, &k);
	if (!r) {
		k.type = 0;
		r = bpf_map_lookup_elem(&sock_rules, &k);
	}
	if (!r || (r->action != ACT_DENY && r->action != ACT_AUDIT))
		return 1;

	count_rule(cgid, r->rule_id, r->action);
	fill_hdr(&ev.hdr, EV_SOCK_CREATE, cgid, r->rule_id, r->action);
	ev.family = ctx->family;
	ev.sock_type = ctx->type;
	ev.protocol = ctx->protocol;
	ev.pad = 0;
	emit(&ev, sizeof(ev));
	return r->action == ACT_DENY ? 0 : 1;
}
