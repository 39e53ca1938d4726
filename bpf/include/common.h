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
#include "pathhash.h"

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ABI_MAX_FOLDS);
	__type(key, struct fold_key);
	__type(value, struct fold_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} folds SEC(".maps");

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
	struct fold_key fk;
	struct fold_val fv;
	enum abi_dev_access ab;
	enum abi_dev_match ac;
	enum abi_net_direction ad;
	enum abi_container_keys ae;
	enum abi_posture af;
	enum abi_task_flags ag;
	enum abi_path_rule_flags ah;
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

/* Two CO-RE flavours of kernfs_node: 6.15 renamed `parent` to `__parent`. */
struct kernfs_node___old {
	struct kernfs_node *parent;
	const char *name;
} __attribute__((preserve_access_index));
struct kernfs_node___new {
	struct kernfs_node *__parent;
	const char *name;
} __attribute__((preserve_access_index));

static __always_inline int is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

#define DOCKER_ID_LEN 64
#define SCOPE_NAME_LEN (7 + DOCKER_ID_LEN + 6) /* docker-<id>.scope */
/* Levels above the task's cgroup searched for a container's (systemd in a container nests 2). */
#define STARTING_MAX_LEVELS 4

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(struct kernfs_node___new, __parent))
		return BPF_CORE_READ((struct kernfs_node___new *)kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

static __always_inline int all_hex(const char *s)
{
	for (int i = 0; i < DOCKER_ID_LEN; i++)
		if (!is_lower_hex(s[i]))
			return 0;
	return 1;
}

/*
 * Is kernfs node `kn` a cgroup Docker made for a container? Only these two names are
 * recognised, which no host service carries: docker-<64 hex>.scope (systemd driver, in any
 * slice) and <64 hex> directly below a cgroup named "docker" (cgroupfs driver). A parent
 * such as system.slice, which holds host processes, never matches.
 */
static __always_inline int is_docker_container_kn(struct kernfs_node *kn)
{
	char name[SCOPE_NAME_LEN + 3], pname[8];
	struct kernfs_node *parent;
	long n;

	n = bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ((struct kernfs_node___new *)kn, name));
	if (n == SCOPE_NAME_LEN + 1)
		return name[0] == 'd' && name[1] == 'o' && name[2] == 'c' && name[3] == 'k' &&
		       name[4] == 'e' && name[5] == 'r' && name[6] == '-' && name[71] == '.' &&
		       name[72] == 's' && name[73] == 'c' && name[74] == 'o' && name[75] == 'p' &&
		       name[76] == 'e' && all_hex(name + 7);
	if (n != DOCKER_ID_LEN + 1 || !all_hex(name))
		return 0;
	parent = kn_parent(kn);
	if (!parent)
		return 0;
	n = bpf_probe_read_kernel_str(pname, sizeof(pname), BPF_CORE_READ((struct kernfs_node___new *)parent, name));
	return n == 7 && pname[0] == 'd' && pname[1] == 'o' && pname[2] == 'c' && pname[3] == 'k' &&
	       pname[4] == 'e' && pname[5] == 'r';
}

/*
 * Is the current task in a Docker container's cgroup, or a child cgroup of one (an init
 * that moved into init.scope before the daemon saw the container)? Only processes runc put
 * there, and their children, are in such a cgroup.
 */
static __always_inline int in_docker_container_cgroup(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);

	for (int level = 0; level < STARTING_MAX_LEVELS && kn; level++) {
		if (is_docker_container_kn(kn))
			return 1;
		kn = kn_parent(kn);
	}
	return 0;
}

/*
 * current_container() for the LSM programs, which run for every task: a task in no
 * registered container but in a Docker container's cgroup is a container that started
 * before the daemon wrote its entry; it is judged by the every-container ruleset
 * (CT_KEY_STARTING) until then. *cgid is its own cgroup, so records name it. Host processes
 * pay the name check only after the lookups missed, and it fails at the first bytes.
 */
static __always_inline struct container *current_or_starting_container(__u64 *cgid)
{
	struct container *ct = current_container(cgid);
	__u64 key = CT_KEY_STARTING;

	if (ct)
		return ct;
	ct = bpf_map_lookup_elem(&containers, &key);
	if (!ct || !in_docker_container_cgroup())
		return NULL;
	*cgid = bpf_get_current_cgroup_id();
	return ct;
}

/* The posture (enum abi_action) of `cls` for the container: ACT_NONE/ACT_ALLOW allow. */
static __always_inline __u8 posture_of(const struct container *ct, __u32 cls)
{
	return (ct->postures >> (PST_BITS * (cls & 7))) & PST_MASK;
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
				     const struct container *ct, __u32 rule_id, __u8 action)
{
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = cgid;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->rule_id = rule_id;
	h->ruleset = ct->ruleset;
	h->type = type;
	h->action = action;
	h->pad = 0;
	h->pad2 = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* One step of the fold hash: FNV-style over 64-bit words. */
static __always_inline __u64 fold_mix(__u64 h, __u64 x)
{
	return (h ^ x) * FNV_PRIME;
}

/* Send a fixed-size event; a full ring is counted, never silent. */
static __always_inline void emit(void *ev, __u64 size)
{
	if (bpf_ringbuf_output(&events, ev, size, 0))
		stat_add(STAT_EVENTS_LOST);
}

/*
 * Is this event an identical repeat (same container, ruleset, rule, process name, uid and
 * `target`) of one sent less than a fold window ago? Then it is only counted in its fold
 * entry, for the daemon to take. Else it is sent (stamped with its fold) and a window
 * starts. Two CPUs that both find the window over both send: one more event, nothing
 * counted twice.
 */
static __always_inline bool fold_repeat(struct event_hdr *h, __u64 target)
{
	struct fold_val fresh = {}, *v;
	struct fold_key k = {};
	__u64 comm[2], window, now = h->ktime_ns;
	struct settings *cfg;
	__u32 zero = 0;

	__builtin_memcpy(comm, h->comm, sizeof(comm));
	/* the ruleset too: a posture's rule id is the same in every ruleset, its policy is not */
	h->fold = hash_final(fold_mix(fold_mix(fold_mix(fold_mix(target, h->uid),
							 ((__u64)h->ruleset << 32) |
								 ((__u64)h->action << 16) | h->type),
						comm[0]),
				      comm[1]));
	cfg = bpf_map_lookup_elem(&settings, &zero);
	window = cfg ? cfg->fold_window_ms * 1000000ULL : 0;
	if (!window)
		return false;
	k.cgroup_id = h->cgroup_id;
	k.fold = h->fold;
	k.rule_id = h->rule_id;
	v = bpf_map_lookup_elem(&folds, &k);
	if (!v) {
		fresh.window_end_ns = now + window;
		/* an entry another CPU made first folds the next repeat instead */
		bpf_map_update_elem(&folds, &k, &fresh, BPF_NOEXIST);
		return false;
	}
	if (now < v->window_end_ns) {
		__sync_fetch_and_add(&v->repeats, 1);
		v->last_ns = now; /* racy between CPUs, and only a timestamp */
		return true;
	}
	v->window_end_ns = now + window;
	return false;
}

/*
 * Every deny or audit decision ends here: counted exactly for its (container, rule), then
 * `size` bytes of the event sent, unless it repeats one sent within the fold window.
 * `target` is a hash of what the operation was on (path, address, device). The header is
 * filled already (fill_hdr, or the packet programs' own); the caller fills the body. The
 * counter is what the trail is held to: events + repeats taken + losses == counter.
 */
static __always_inline void report_filled(struct event_hdr *h, __u64 size, __u64 target)
{
	count_rule(h->cgroup_id, h->rule_id, h->action);
	if (!fold_repeat(h, target))
		emit(h, size);
}

/* report_filled() for a decision made in the task's own context. */
static __always_inline void report(struct event_hdr *h, __u64 size, __u16 type, __u64 cgid,
				   const struct container *ct, __u32 rule_id, __u8 action,
				   __u64 target)
{
	fill_hdr(h, type, cgid, ct, rule_id, action);
	report_filled(h, size, target);
}

/*
 * First match per access slot: each slot still in `*need` takes the rule's action if the
 * rule decides that slot (not ACT_NONE), and is then decided. Rules are offered most
 * specific first, so the first that decides a slot is its most specific match.
 */
static __always_inline void first_match(__u32 *need, const __u8 *action, const __u32 *rule_id,
					int slots, __u8 *slot_action, __u32 *slot_rule)
{
	for (int a = 0; a < slots; a++) {
		if ((*need & (1u << a)) && action[a] != ACT_NONE) {
			slot_action[a] = action[a];
			slot_rule[a] = rule_id[a];
			*need &= ~(1u << a);
		}
	}
}

#endif /* ENFORCER_COMMON_H */
