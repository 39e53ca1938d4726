/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sock_rules, shared (pinned by name) by the cgroup sock_create program (inet families) and
 * the LSM socket_create program (every other family), and the lookup both do.
 */
#ifndef ENFORCER_SOCK_RULES_H
#define ENFORCER_SOCK_RULES_H

#include "common.h"

#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_SOCK_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sock_key);
	__type(value, struct sock_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_rules SEC(".maps");

/*
 * Decide socket(family, type, protocol) for container `ct`: (family, type) first, then
 * (family, any type). Counts and reports a deny or audit; returns the rule's action.
 */
static __always_inline __u8 decide_socket(struct container *ct, __u64 cgid, __u32 family,
					  __u32 type, __u32 protocol)
{
	struct sock_key k = { .ruleset = ct->ruleset, .family = family, .type = type };
	struct sock_event ev;
	struct sock_rule *r;

	r = bpf_map_lookup_elem(&sock_rules, &k);
	if (!r) {
		k.type = 0;
		r = bpf_map_lookup_elem(&sock_rules, &k);
	}
	if (!r || (r->action != ACT_DENY && r->action != ACT_AUDIT))
		return ACT_NONE;
	ev.family = family;
	ev.sock_type = type;
	ev.protocol = protocol;
	ev.pad = 0;
	report(&ev.hdr, sizeof(ev), EV_SOCK_CREATE, cgid, ct, r->rule_id, r->action,
	       fold_mix(((__u64)family << 32) | type, protocol));
	return r->action;
}

#endif /* ENFORCER_SOCK_RULES_H */
