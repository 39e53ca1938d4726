// SPDX-License-Identifier: GPL-2.0-only
/*
 * Network rules: cgroup connect4/6 and sendmsg4/6 (egress), bind4/6 (ingress) on every
 * container's cgroup.
 *
 * One LPM lookup finds the longest rule prefix holding the address; its value lists every
 * (port range, protocol) of the rules naming that prefix or a shorter one covering it, most
 * specific first (the compiler sorts them), so the first entry that matches decides. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is looked up as the IPv4 address it is: a
 * dual-stack socket cannot sidestep an IPv4 rule. A container without rules for the
 * direction leaves after the containers lookup.
 */
#include "common.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, ABI_MAX_NET_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct net4_key);
	__type(value, struct net_rules);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net4_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, ABI_MAX_NET_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct net6_key);
	__type(value, struct net_rules);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net6_rules SEC(".maps");

static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 dir, __u16 ev_type, bool v6)
{
	__u32 flag = dir == NET_EGRESS ? CT_NET_EGRESS : CT_NET_INGRESS;
	__u32 protocol, rule_id = RULE_NONE;
	__u8 action = ACT_NONE;
	struct net_rules *rules;
	struct net_event ev;
	struct container *ct;
	__u16 port;
	__u64 cgid = 0;
	bool mapped = false;

	ct = current_container(&cgid);
	if (!ct || !(ct->flags & flag))
		return 1;

	__builtin_memset(&ev, 0, sizeof(ev));
	if (v6) {
		ev.addr[0] = ctx->user_ip6[0];
		ev.addr[1] = ctx->user_ip6[1];
		ev.addr[2] = ctx->user_ip6[2];
		ev.addr[3] = ctx->user_ip6[3];
		mapped = ev.addr[0] == 0 && ev.addr[1] == 0 && ev.addr[2] == bpf_htonl(0xffff);
	} else {
		ev.addr[0] = ctx->user_ip4;
	}
	protocol = ctx->protocol;
	port = bpf_ntohs(ctx->user_port & 0xffff);

	if (v6 && !mapped) {
		struct net6_key k = { .prefixlen = NET_KEY_HEADER_BITS + 128, .ruleset = ct->ruleset,
				      .direction = dir };
		__builtin_memcpy(k.addr, ev.addr, 16);
		rules = bpf_map_lookup_elem(&net6_rules, &k);
	} else {
		struct net4_key k = { .prefixlen = NET_KEY_HEADER_BITS + 32, .ruleset = ct->ruleset,
				      .direction = dir };
		__u32 a4 = mapped ? ev.addr[3] : ev.addr[0];
		__builtin_memcpy(k.addr, &a4, 4);
		rules = bpf_map_lookup_elem(&net4_rules, &k);
	}
	if (!rules)
		return 1;

	for (__u32 i = 0; i < ABI_NET_SLOTS; i++) {
		struct net_entry *e = &rules->e[i];

		if (i >= rules->count)
			break;
		if (port < e->port_lo || port > e->port_hi)
			continue;
		if (e->protocol != NET_PROTO_ANY && e->protocol != protocol)
			continue;
		action = e->action;
		rule_id = e->rule_id;
		break;
	}
	if (action != ACT_DENY && action != ACT_AUDIT)
		return 1;

	count_rule(cgid, rule_id, action);
	fill_hdr(&ev.hdr, ev_type, cgid, rule_id, action);
	ev.family = v6 ? AF_INET6 : AF_INET;
	ev.protocol = protocol;
	ev.port = port;
	emit(&ev, sizeof(ev));
	return action == ACT_DENY ? 0 : 1;
}

SEC("cgroup/connect4")
int enforcer_connect4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_EGRESS, EV_CONNECT, false);
}

SEC("cgroup/connect6")
int enforcer_connect6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_EGRESS, EV_CONNECT, true);
}

SEC("cgroup/sendmsg4")
int enforcer_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_EGRESS, EV_SENDMSG, false);
}

SEC("cgroup/sendmsg6")
int enforcer_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_EGRESS, EV_SENDMSG, true);
}

SEC("cgroup/bind4")
int enforcer_bind4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_INGRESS, EV_BIND, false);
}

SEC("cgroup/bind6")
int enforcer_bind6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, NET_INGRESS, EV_BIND, true);
}
