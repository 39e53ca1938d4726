// SPDX-License-Identifier: GPL-2.0-only
/*
 * File and exec rules: LSM file_open and bprm_check_security.
 *
 * A process outside every container leaves after one hash lookup (its cgroup id is not in
 * `containers`). For a container whose ruleset has file (or exec) rules, the opened file's
 * path is rebuilt the way the container sees it: a bounded walk from the dentry up to the
 * task's root, crossing mounts, then down again hashing every prefix. Rules are found with
 * one hash lookup per depth that holds rules, deepest first, so the most specific rule wins
 * and the cost does not grow with the number of rules. A path that is too deep or too long
 * to resolve is denied and reported: never allowed by default.
 */
#include "common.h"
#include "pathhash.h"

char LICENSE[] SEC("license") = "GPL";

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define O_TRUNC 01000

enum walk_status {
	WALK_RUNNING = 0,
	WALK_DONE = 1,     /* reached the task's root */
	WALK_OUTSIDE = 2,  /* not below the task's root (pipe, socket, other mount ns): no rule names it */
	WALK_TOO_DEEP = 3,
	WALK_TOO_LONG = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_PATH_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct path_key);
	__type(value, struct path_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} path_rules SEC(".maps");

/* Per-CPU working memory, too big for the 512-byte stack. */
struct scratch {
	__u64 busy;                      /* claimed with cmpxchg, released at the end */
	__u64 names[ABI_MAX_DEPTH];       /* component name pointers, leaf first */
	__u32 lens[ABI_MAX_DEPTH];
	__u64 hashes[ABI_MAX_DEPTH + 1];  /* finalised hash of the prefix of each depth */
	__u16 plens[ABI_MAX_DEPTH + 1];   /* its length in bytes */
	struct file_event ev;
	char slack[512];                  /* lets the verifier see in-bounds component copies */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ABI_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct walk_ctx {
	__u32 slot;
	__u32 n;            /* components collected */
	__u32 status;
	__u32 off;          /* bytes of path built so far (pass 2) */
	__u64 h;            /* running FNV state (pass 2) */
	__u64 seed;
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct mount *root_mnt;
};

static __always_inline struct mount *real_mount(struct vfsmount *v)
{
	return (struct mount *)((void *)v - bpf_core_field_offset(struct mount, mnt));
}

/* Pass 1: from the file up to the root, remembering each component. */
static long walk_up(__u64 i, struct walk_ctx *c)
{
	struct dentry *d = c->dentry, *parent, *mnt_root;
	struct mount *m = c->mnt, *mparent;
	struct scratch *s;
	__u32 idx;

	if (d == c->root_dentry && m == c->root_mnt) {
		c->status = WALK_DONE;
		return 1;
	}
	mnt_root = BPF_CORE_READ(m, mnt.mnt_root);
	if (d == mnt_root) {
		mparent = BPF_CORE_READ(m, mnt_parent);
		if (!mparent || mparent == m) {
			c->status = WALK_OUTSIDE;
			return 1;
		}
		c->dentry = BPF_CORE_READ(m, mnt_mountpoint);
		c->mnt = mparent;
		return 0;
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d) {
		c->status = WALK_OUTSIDE;
		return 1;
	}
	if (c->n >= ABI_MAX_DEPTH) {
		c->status = WALK_TOO_DEEP;
		return 1;
	}
	s = bpf_map_lookup_elem(&scratch, &c->slot);
	if (!s)
		return 1;
	idx = c->n & (ABI_MAX_DEPTH - 1);
	s->names[idx] = (__u64)BPF_CORE_READ(d, d_name.name);
	s->lens[idx] = BPF_CORE_READ(d, d_name.len);
	c->n++;
	c->dentry = parent;
	return 0;
}

/* Pass 2: from the root down, building the path text and the hash of every prefix. */
static long walk_down(__u64 j, struct walk_ctx *c)
{
	struct scratch *s = bpf_map_lookup_elem(&scratch, &c->slot);
	__u32 idx, len, off, k;
	const char *name;
	__u64 h;

	if (!s || j >= c->n)
		return 1;
	idx = (c->n - 1 - (__u32)j) & (ABI_MAX_DEPTH - 1);
	len = s->lens[idx] & 0xff;          /* NAME_MAX is 255 */
	name = (const char *)s->names[idx];
	if (c->off + 1 + len > ABI_MAX_PATH) {
		c->status = WALK_TOO_LONG;
		return 1;
	}
	off = c->off & (ABI_MAX_PATH - 1);
	s->ev.path[off] = '/';
	bpf_probe_read_kernel(&s->ev.path[off + 1], len, name);
	h = fnv_step(c->h, '/');
	for (k = 0; k < 255; k++) {
		if (k >= len)
			break;
		h = fnv_step(h, (__u8)s->ev.path[off + 1 + k]);
	}
	c->h = h;
	c->off = off + 1 + len;
	idx = ((__u32)j + 1) & (ABI_MAX_DEPTH - 1);
	s->hashes[idx] = hash_final(h);
	s->plens[idx] = c->off;
	return 0;
}

struct match_ctx {
	__u32 slot;
	__u32 n;
	__u32 ruleset;
	__u32 need;                  /* bit per access slot still undecided */
	__u64 dir_depths;
	__u8 exact_kind;
	__u8 dir_kind;
	__u8 action[ACC_SLOTS];
	__u32 rule_id[ACC_SLOTS];
};

static __always_inline void take(struct match_ctx *c, struct path_rule *r)
{
	for (int a = 0; a < ACC_SLOTS; a++) {
		if ((c->need & (1u << a)) && r->action[a] != ACT_NONE) {
			c->action[a] = r->action[a];
			c->rule_id[a] = r->rule_id[a];
			c->need &= ~(1u << a);
		}
	}
}

/* Deepest first: the first rule met for an access class is the most specific one. */
static long match_level(__u64 i, struct match_ctx *c)
{
	struct scratch *s = bpf_map_lookup_elem(&scratch, &c->slot);
	struct path_key k = {};
	struct path_rule *r;
	__u32 depth, idx;

	if (!s || i > c->n || !c->need)
		return 1;
	depth = c->n - (__u32)i;
	idx = depth & (ABI_MAX_DEPTH - 1);
	if (depth == ABI_MAX_DEPTH)
		idx = ABI_MAX_DEPTH; /* never: walk refuses n == MAX_DEPTH for a resolved path */
	k.hash = s->hashes[idx & (ABI_MAX_DEPTH - 1)];
	k.ruleset = c->ruleset;
	k.len = s->plens[idx & (ABI_MAX_DEPTH - 1)];
	k.depth = depth;
	if (i == 0) {
		k.kind = c->exact_kind;
		r = bpf_map_lookup_elem(&path_rules, &k);
		if (r)
			take(c, r);
	}
	if (c->need && (c->dir_depths & (1ULL << (depth < 63 ? depth : 63)))) {
		k.kind = c->dir_kind;
		r = bpf_map_lookup_elem(&path_rules, &k);
		if (r)
			take(c, r);
	}
	return 0;
}

static __always_inline int try_slot(__u32 i)
{
	struct scratch *s = bpf_map_lookup_elem(&scratch, &i);

	return s && __sync_val_compare_and_swap(&s->busy, 0, 1) == 0;
}

/* Unrolled with constant keys: a loop counter spilled to the stack loses its bounds. */
static __always_inline int claim_slot(void)
{
	if (try_slot(0))
		return 0;
	if (try_slot(1))
		return 1;
	if (try_slot(2))
		return 2;
	if (try_slot(3))
		return 3;
	return -1;
}

/*
 * Decide one open or exec of `file` for the container `ct`. `need` has a bit per access
 * slot (ACC_READ, ACC_WRITE); `exec` selects the exec rule namespace.
 */
static __always_inline int decide(struct file *file, __u64 cgid, struct container *ct,
				  __u32 need, __u32 accf, bool exec)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct walk_ctx w = {};
	struct match_ctx mc = {};
	struct scratch *s;
	__u32 rule_id = RULE_NONE, zero = 0, flags = 0;
	__u8 action = ACT_NONE;
	struct settings *cfg;
	int slot, ret = 0;

	slot = claim_slot();
	if (slot < 0) {
		stat_add(STAT_SCRATCH_BUSY);
		count_rule(cgid, RULE_UNRESOLVED, ACT_DENY);
		return -EPERM;
	}
	w.slot = slot;
	s = bpf_map_lookup_elem(&scratch, &w.slot);
	if (!s)
		return -EPERM;

	cfg = bpf_map_lookup_elem(&settings, &zero);
	w.seed = cfg ? cfg->hash_seed : 0;
	w.dentry = BPF_CORE_READ(file, f_path.dentry);
	w.mnt = real_mount(BPF_CORE_READ(file, f_path.mnt));
	w.root_dentry = BPF_CORE_READ(task, fs, root.dentry);
	w.root_mnt = real_mount(BPF_CORE_READ(task, fs, root.mnt));

	bpf_loop(ABI_MAX_DEPTH + 64, walk_up, &w, 0);
	if (w.status == WALK_OUTSIDE)
		goto out; /* not a path of this container's tree: no rule can name it */
	if (w.status == WALK_RUNNING)
		w.status = WALK_TOO_DEEP; /* more mount crossings than the loop allows */

	w.h = FNV_OFFSET ^ w.seed;
	s->hashes[0] = hash_final(w.h);
	s->plens[0] = 0;
	bpf_loop(ABI_MAX_DEPTH, walk_down, &w, 0);

	if (w.status == WALK_DONE) {
		mc.slot = w.slot;
		mc.n = w.n;
		mc.ruleset = ct->ruleset;
		mc.need = need;
		mc.dir_depths = exec ? ct->exec_dir_depths : ct->file_dir_depths;
		mc.exact_kind = exec ? PK_EXEC_EXACT : PK_FILE_EXACT;
		mc.dir_kind = exec ? PK_EXEC_DIR : PK_FILE_DIR;
		bpf_loop(ABI_MAX_DEPTH + 1, match_level, &mc, 0);
		for (int a = 0; a < ACC_SLOTS; a++) {
			if (mc.action[a] == ACT_DENY || (mc.action[a] == ACT_AUDIT && action != ACT_DENY)) {
				action = mc.action[a];
				rule_id = mc.rule_id[a];
			}
		}
	} else {
		/* Fail closed: a path we cannot resolve is denied and reported. */
		action = ACT_DENY;
		rule_id = RULE_UNRESOLVED;
		flags = FEV_TRUNCATED;
		stat_add(STAT_UNRESOLVED);
	}

	if (action == ACT_DENY || action == ACT_AUDIT) {
		__u64 size;

		count_rule(cgid, rule_id, action);
		fill_hdr(&s->ev.hdr, exec ? EV_EXEC : EV_FILE, cgid, rule_id, action);
		s->ev.access = accf;
		s->ev.path_len = w.off;
		s->ev.flags = flags;
		s->ev.pad = 0;
		size = offsetof(struct file_event, path) + w.off;
		if (size > sizeof(struct file_event))
			size = sizeof(struct file_event);
		emit(&s->ev, size);
		if (action == ACT_DENY)
			ret = -EPERM;
	}
out:
	s->busy = 0;
	return ret;
}

SEC("lsm/file_open")
int BPF_PROG(enforcer_file_open, struct file *file, int ret)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct container *ct;
	__u32 fmode, fflags, need = 0, accf = 0;

	if (ret)
		return ret; /* an earlier LSM already denied */
	ct = lookup_container(cgid);
	if (!ct || !(ct->flags & CT_FILE_RULES))
		return 0;
	/*
	 * Overlayfs opens the real file again under the overlay's path (a "fake path": the
	 * inode is not the dentry's). The user-visible open was already decided; deciding the
	 * inner one would count it twice.
	 */
	if (BPF_CORE_READ(file, f_inode) != BPF_CORE_READ(file, f_path.dentry, d_inode))
		return 0;
	fmode = BPF_CORE_READ(file, f_mode);
	fflags = BPF_CORE_READ(file, f_flags);
	if (fmode & FMODE_READ) {
		need |= 1u << ACC_READ;
		accf |= ACCF_READ;
	}
	if ((fmode & FMODE_WRITE) || (fflags & O_TRUNC)) {
		need |= 1u << ACC_WRITE;
		accf |= ACCF_WRITE;
	}
	if (!need) { /* ioctl-only opens: judge as a read */
		need = 1u << ACC_READ;
		accf = ACCF_READ;
	}
	return decide(file, cgid, ct, need, accf, false);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(enforcer_bprm_check, struct linux_binprm *bprm, int ret)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct container *ct;

	if (ret)
		return ret;
	ct = lookup_container(cgid);
	if (!ct || !(ct->flags & CT_EXEC_RULES))
		return 0;
	return decide(BPF_CORE_READ(bprm, file), cgid, ct, 1u << ACC_READ, ACCF_EXEC, true);
}
