/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps and helpers shared by every program family. Maps are pinned by name under the
 * daemon's pin root, so each object reuses the same maps, and the maps (with the links)
 * outlive the daemon: killing it does not lift enforcement.
 */
#ifndef ENFORCER_COMMON_H
#define ENFORCER_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "enforcer_abi.h"

#define EPERM 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_CONTAINERS);
	__type(key, __u64);
	__type(value, struct container);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} containers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_COUNTERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct counter_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ABI_RINGBUF_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* Puts every ABI type into BTF, where Python reads the layouts from. Never used at run time. */
struct abi_anchor {
	struct container a;
	struct path_key b;
	struct path_rule c;
	struct counter_key d;
	struct settings e;
	struct event_hdr f;
	struct file_event g;
	struct device_event h;
	struct net_event i;
	struct sock_event j;
	enum abi_limits k;
	enum abi_action l;
	enum abi_access m;
	enum abi_path_kind n;
	enum abi_container_flags o;
	enum abi_rule_ids p;
	enum abi_event_type q;
	enum abi_stat r;
	enum file_event_flags s;
	struct dev_key t;
	struct dev_rule u;
	struct net4_key v;
	struct net6_key w;
	struct net_entry x;
	struct net_rules y;
	struct sock_key z;
	struct sock_rule aa;
	enum abi_dev_access ab;
	enum abi_dev_match ac;
	enum abi_net_direction ad;
};
struct abi_anchor *abi_anchor_unused __attribute__((unused));

static __always_inline void stat_add(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline struct container *lookup_container(__u64 cgid)
{
	return bpf_map_lookup_elem(&containers, &cgid);
}

/*
 * The container the current task belongs to, for the cgroup programs. A process may sit in
 * a child cgroup the container made for itself (systemd, cgroup namespaces): the programs
 * attached to the container's cgroup run for it too, so its ancestors are searched, from
 * the root down. Containers are not nested (dockerd puts them side by side), so the first
 * one found is the container. *cgid receives the container's cgroup id.
 */
static __always_inline struct container *current_container(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id(), anc;
	struct container *ct = bpf_map_lookup_elem(&containers, &id);

	if (ct) {
		*cgid = id;
		return ct;
	}
	for (int level = 1; level < ABI_MAX_CGROUP_LEVEL; level++) {
		anc = bpf_get_current_ancestor_cgroup_id(level);
		if (!anc || anc == id)
			break;
		ct = bpf_map_lookup_elem(&containers, &anc);
		if (ct) {
			*cgid = anc;
			return ct;
		}
	}
	return NULL;
}

/* Exact count per (container, rule). Hash inserts can race between CPUs: retry once. */
static __always_inline void count_rule(__u64 cgid, __u32 rule_id, __u8 action)
{
	struct counter_key k = { .cgroup_id = cgid, .rule_id = rule_id };
	__u64 one = 1, *v;

	stat_add(action == ACT_DENY ? STAT_DENIED : STAT_AUDITED);
	v = bpf_map_lookup_elem(&counters, &k);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	if (bpf_map_update_elem(&counters, &k, &one, BPF_NOEXIST) == 0)
		return;
	v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		stat_add(STAT_COUNTER_FULL);
}

static __always_inline void fill_hdr(struct event_hdr *h, __u16 type, __u64 cgid,
				     __u32 rule_id, __u8 action)
{
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = cgid;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->rule_id = rule_id;
	h->type = type;
	h->action = action;
	h->pad = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Send a fixed-size event; a full ring is counted, never silent. */
static __always_inline void emit(void *ev, __u64 size)
{
	if (bpf_ringbuf_output(&events, ev, size, 0))
		stat_add(STAT_EVENTS_LOST);
}

#endif /* ENFORCER_COMMON_H */
