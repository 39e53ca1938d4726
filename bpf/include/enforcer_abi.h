/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of the enforcer: map keys, map values and ring buffer events.
 *
 * This header is the only definition of these layouts. Python never hand-copies them: it
 * reads them from the BTF of the compiled objects (enforcer.kernel.abi), so a change here
 * is a change on both sides. Enums (not #defines) carry the constants for the same reason:
 * enums reach BTF, macros do not. Every type below is anchored in BTF by abi_anchor in
 * common.h.
 */
#ifndef ENFORCER_ABI_H
#define ENFORCER_ABI_H

enum abi_limits {
	/* Components the path walk follows before it gives up and fails closed. */
	ABI_MAX_DEPTH = 128,
	/* Bytes of a resolved path (without NUL) before it gives up and fails closed. */
	ABI_MAX_PATH = 4096,
	ABI_COMM_LEN = 16,
	/* Scratch slots per CPU: a preempted program keeps its slot, the next one claims another. */
	ABI_SCRATCH_SLOTS = 4,
	ABI_MAX_CONTAINERS = 65536,
	ABI_MAX_PATH_RULES = 262144,
	ABI_MAX_COUNTERS = 262144,
	ABI_MAX_DEV_RULES = 65536,
	ABI_MAX_NET_RULES = 65536,
	ABI_MAX_SOCK_RULES = 4096,
	/* Entries (port range x protocol) one network prefix can hold, its covering prefixes' included. */
	ABI_NET_SLOTS = 32,
	/* Cgroup levels searched for the container of a process in a child cgroup of it. */
	ABI_MAX_CGROUP_LEVEL = 32,
	ABI_RINGBUF_BYTES = 16 << 20,
	ABI_MAX_INODE_RULES = 262144,
	/* Distinct reported operations whose repeats are being folded (LRU: the oldest goes). */
	ABI_MAX_FOLDS = 8192,
	/* Silent open allows remembered per dentry (the decision cache, lsm_file.bpf.c). */
	ABI_OPEN_CACHE = 16384,
};

/* What a matching rule does. NONE: no rule of this access class matched at this level. */
enum abi_action {
	ACT_NONE = 0,
	ACT_ALLOW = 1,
	ACT_AUDIT = 2,
	ACT_DENY = 3,
};

/* Access classes of a file rule; a value of path_rule holds one slot per class. */
enum abi_access {
	ACC_READ = 0,
	ACC_WRITE = 1,
	ACC_SLOTS = 2,
	/* bit flags for events */
	ACCF_READ = 1,
	ACCF_WRITE = 2,
	ACCF_EXEC = 4,
	ACCF_MKNOD = 8,
};

/* Access classes of a device rule: one slot each in struct dev_rule. */
enum abi_dev_access {
	DACC_READ = 0,
	DACC_WRITE = 1,
	DACC_MKNOD = 2,
	DACC_SLOTS = 3,
};

/*
 * Device rule wildcards. A device is looked up at up to 8 levels, most specific first:
 * level bit 0 = any type, bit 1 = any minor, bit 2 = any major (so an exact major beats an
 * exact minor beats an exact type). container.dev_levels says which levels hold rules.
 */
enum abi_dev_match {
	DEV_TYPE_ANY = 0,       /* dev_key.type; else 1 block, 2 char (BPF_DEVCG_DEV_*) */
	DEV_TYPE_BLOCK = 1,
	DEV_TYPE_CHAR = 2,
	DEV_NUM_ANY = 0xffffffff,
	DEV_LEVEL_TYPE_ANY = 1,
	DEV_LEVEL_MINOR_ANY = 2,
	DEV_LEVEL_MAJOR_ANY = 4,
	DEV_LEVELS = 8,
};

enum abi_net_direction {
	NET_EGRESS = 1,         /* connect4/6, sendmsg4/6, cgroup_skb/egress */
	NET_INGRESS = 2,        /* bind4/6, cgroup_skb/ingress */
	NET_PROTO_ANY = 0,      /* net_entry.protocol */
	/* bits of net_key prefixlen before the address: ruleset + direction */
	NET_KEY_HEADER_BITS = 64,
};

/* Which rule namespace a path_key lives in. */
enum abi_path_kind {
	PK_FILE_EXACT = 1,
	PK_FILE_DIR = 2,
	PK_EXEC_EXACT = 3,
	PK_EXEC_DIR = 4,
	/* A deny/audit rule names this path or a path below it: it cannot be renamed,
	 * removed or hard-linked (slot ACC_READ holds the strongest such rule). */
	PK_GUARD = 5,
};

/* container.flags: which hooks have work to do for this container's ruleset. */
enum abi_container_flags {
	CT_FILE_RULES = 1,
	CT_EXEC_RULES = 2,
	CT_DEV_RULES = 4,
	CT_NET_EGRESS = 8,      /* network rules for connect/sendmsg/egress packets */
	CT_SOCK_RULES = 16,
	CT_NET_INGRESS = 32,    /* network rules for bind/ingress packets */
	/*
	 * The ruleset's path_rules mark every directory above a rule path, so the deepest
	 * marked prefix can be binary-searched. A ruleset written by an earlier version lacks
	 * the marks (and the flag): its dir rules are looked up at every depth instead.
	 */
	CT_PATH_MARKERS = 64,
	/* An exec allow rule with `origin: image`: a file of the container's image, unchanged
	 * since the container was created, is allowed (image_times holds the created time). */
	CT_EXEC_ORIGIN_IMAGE = 128,
};

/*
 * Postures: what decides an operation no rule matched. struct container.postures holds
 * PST_BITS per class at bit PST_BITS * class, as an enum abi_action (ACT_NONE and
 * ACT_ALLOW: allowed, as without postures). A container whose postures are all allow has
 * postures == 0 and the programs never look further. A posture decision is recorded and
 * counted under rule id RULE_POSTURE_BASE + class.
 */
enum abi_posture {
	PST_EXEC = 0,           /* bprm_check, executable mappings */
	PST_FILE_READ = 1,
	PST_FILE_WRITE = 2,
	PST_EGRESS = 3,
	PST_INGRESS = 4,
	PST_DEVICE = 5,
	PST_SOCKET = 6,
	PST_CLASSES = 7,
	PST_BITS = 2,
	PST_MASK = 3,
	PST_NO_CLASS = 15,      /* an access slot no posture judges (e.g. a rename's read side) */
};

/* judged_tasks (task storage) values: which tasks postures judge. */
enum abi_task_flags {
	/*
	 * Set on a task of a container when it execs in the container's mount namespace (the
	 * entrypoint, a `docker exec` command) and inherited by its children; written by the
	 * daemon for tasks of containers that ran before the programs were loaded. The
	 * runtime's set-up (runc init before its exec) is never flagged: postures skip it.
	 */
	TASK_JUDGED = 1,
};

/*
 * Reserved keys of the containers map. No cgroup has id 0: that entry holds the ruleset of
 * the policies selecting every container, which a container the daemon has not registered
 * yet gets from its first instruction when its cgroup is recognisably a Docker container's
 * (see current_or_starting_container() in common.h).
 */
enum abi_container_keys {
	CT_KEY_STARTING = 0,
};

/* Reserved rule ids (real rules are numbered from 1 by the compiler). */
enum abi_rule_ids {
	RULE_NONE = 0,
	/* The path could not be resolved within ABI_MAX_DEPTH / ABI_MAX_PATH: denied. */
	RULE_UNRESOLVED = 0xfffffffe,
	/* A task of a container wrote to cgroupfs outside its container (a move out, mkdir). */
	RULE_CGROUP_ESCAPE = 0xfffffffd,
	/* RULE_POSTURE_BASE + enum abi_posture class: the posture of that class decided. The
	 * daemon names the policy that set it from the container's ruleset. */
	RULE_POSTURE_BASE = 0xffffff00,
};

enum abi_event_type {
	EV_FILE = 1,
	EV_EXEC = 2,
	EV_DEVICE = 3,
	EV_CONNECT = 4,
	EV_SENDMSG = 5,
	EV_BIND = 6,
	EV_SOCK_CREATE = 7,
	EV_EGRESS = 8,          /* cgroup_skb/egress: a packet leaving (struct net_event) */
	EV_INGRESS = 9,         /* cgroup_skb/ingress: a packet arriving (struct net_event) */
};

/* Indexes of the global per-CPU stats array. */
enum abi_stat {
	STAT_EVENTS_LOST = 0,   /* ring buffer full: a record could not be sent (still counted) */
	STAT_DENIED = 1,
	STAT_AUDITED = 2,
	STAT_UNRESOLVED = 3,
	STAT_SCRATCH_BUSY = 4,  /* every scratch slot was taken: denied (fail closed) */
	STAT_COUNTER_FULL = 5,  /* per-rule counter map full: the denial is in STAT_DENIED only */
	STAT_OPEN_CACHED = 6,   /* opens allowed from the decision cache, with no walk */
	STAT_KILL_FAILED = 7,   /* a clone3 into an outside cgroup whose caller could not be killed */
	STAT_NR = 8,
};

/* containers: key = cgroup v2 id (u64), value: */
struct container {
	__u32 ruleset;          /* rules of every map are keyed by ruleset id */
	__u32 flags;            /* enum abi_container_flags */
	__u64 reserved[2];      /* unused (were dir rule depths): the size of maps pinned earlier */
	__u32 dev_levels;       /* bit l: dev_rules has entries at wildcard level l (enum abi_dev_match) */
	__u32 postures;         /* enum abi_posture: an enum abi_action per class (0: allow) */
};

/* path_rules: one entry per (ruleset, kind, path prefix) that any rule names. */
struct path_key {
	__u64 hash;             /* seeded FNV-1a of the path bytes, finalised (see hash.h) */
	__u32 ruleset;
	__u16 len;              /* bytes of the path ("/etc/shadow" = 11, "/" = 0) */
	__u8 depth;             /* components ("/" = 0, "/etc" = 1) */
	__u8 kind;              /* enum abi_path_kind */
};

struct path_rule {
	__u32 rule_id[ACC_SLOTS];  /* exec rules use slot ACC_READ only */
	__u8 action[ACC_SLOTS];    /* enum abi_action per access class */
	__u8 flags;                /* enum abi_path_rule_flags */
	__u8 pad[5];
};

enum abi_path_rule_flags {
	/* A dir-kind entry with a rule of its namespace on a path strictly below it: the
	 * kernel's walk down the path goes on past this directory only then. */
	PR_BELOW = 1,
};

/* dev_rules: key = what a device rule names, wildcards as in enum abi_dev_match. */
struct dev_key {
	__u32 ruleset;
	__u32 type;
	__u32 major;
	__u32 minor;
};

struct dev_rule {
	__u32 rule_id[DACC_SLOTS];
	__u8 action[DACC_SLOTS];   /* enum abi_action per device access class */
	__u8 pad;
};

/*
 * net4_rules / net6_rules: LPM tries. prefixlen = NET_KEY_HEADER_BITS + the CIDR's length,
 * so ruleset and direction always match exactly and the address by prefix. addr is in
 * network byte order. IPv4-mapped IPv6 destinations are looked up in net4_rules.
 */
struct net4_key {
	__u32 prefixlen;
	__u32 ruleset;
	__u32 direction;        /* enum abi_net_direction */
	__u8 addr[4];
};

struct net6_key {
	__u32 prefixlen;
	__u32 ruleset;
	__u32 direction;
	__u8 addr[16];
};

/* One (port range, protocol) of a rule naming this prefix or a shorter one covering it. */
struct net_entry {
	__u16 port_lo;          /* host byte order, inclusive */
	__u16 port_hi;
	__u8 protocol;          /* IPPROTO_TCP / IPPROTO_UDP / NET_PROTO_ANY */
	__u8 action;
	__u16 pad;
	__u32 rule_id;
};

/* Entries sorted most specific first (the compiler's job): the first that matches decides. */
struct net_rules {
	__u32 count;
	__u32 pad;
	struct net_entry e[ABI_NET_SLOTS];
};

/* sock_rules: key (ruleset, family, type); type 0 = any type of the family. */
struct sock_key {
	__u32 ruleset;
	__u16 family;
	__u16 type;
};

struct sock_rule {
	__u32 rule_id;
	__u8 action;
	__u8 pad[3];
};

/* counters: exact per (container, rule) counts of denials and audits. */
struct counter_key {
	__u64 cgroup_id;
	__u32 rule_id;
	__u32 pad;
};

/* settings: single-entry array, written by the daemon before it attaches anything. */
struct settings {
	__u64 hash_seed;
	__u32 flags;
	/* inode number of the host's (pid 1's) mount namespace, written by the daemon: a task
	 * in it is the runtime setting a container up, never the container's own code */
	__u32 host_mnt_ns;
	/* identical repeats of a reported operation within this many ms share one event
	 * (struct fold_key); 0: every operation is sent */
	__u32 fold_window_ms;
	__u32 pad;
};

/*
 * cache_state (one entry): what the file_open decision cache (lsm_file.bpf.c) is checked
 * against. `epoch` is a random non-zero value the daemon writes after every change to the
 * maps a file verdict reads (containers, path_rules, inode_rules, settings); the two
 * addresses are the kernel's rename_lock and mount_lock seqlocks (from /proc/kallsyms),
 * whose sequence counts move on every rename and every mount tree change. Any of them 0:
 * nothing is cached.
 */
struct cache_state {
	__u64 epoch;
	__u64 rename_lock;
	__u64 mount_lock;
};

/* Every event starts with this header; `type` tells which body follows. */
struct event_hdr {
	__u64 ktime_ns;         /* bpf_ktime_get_boot_ns(): daemon maps it to wall time */
	__u64 cgroup_id;
	__u64 fold;             /* what identical repeats share: a hash of type, action, ruleset, uid, comm, target */
	__u32 pid;              /* tgid as seen from the host */
	__u32 uid;
	__u32 rule_id;
	__u32 ruleset;          /* the container entry's when it was decided: what names a posture */
	__u16 type;             /* enum abi_event_type */
	__u8 action;            /* enum abi_action (DENY or AUDIT) */
	__u8 pad;
	char comm[ABI_COMM_LEN];
	__u32 pad2;
};

/*
 * folds: the repeats of one reported operation (container, rule, event_hdr.fold) sent as
 * no event. The daemon takes them (lookup-and-delete, one syscall) at each loss check and
 * writes them as repeats of the key's event, so a storm costs the ring buffer about one
 * event per window per distinct operation and the counts still add up to the counters. Only
 * the daemon resets `repeats`: a program that reset it too could race with the take and
 * have the same repeats written twice; an increment lost to a take shows as a loss instead.
 */
struct fold_key {
	__u64 cgroup_id;
	__u64 fold;
	__u32 rule_id;
	__u32 pad;
};

struct fold_val {
	__u64 window_end_ns;    /* boot-time ns: a repeat before it is folded, not sent */
	__u64 repeats;          /* folded since the daemon last took them */
	__u64 last_ns;          /* boot-time ns of the latest repeat: the folded record's time */
};

struct file_event {
	struct event_hdr hdr;
	__u32 access;           /* ACCF_* */
	__u32 path_len;         /* bytes of path[] that are sent (no NUL) */
	__u32 flags;            /* file_event_flags */
	__u32 op;               /* enum file_op: which hook judged it */
	char path[ABI_MAX_PATH];
};

enum file_event_flags {
	FEV_TRUNCATED = 1,      /* path was too long or deep: path[] holds the part resolved */
};

/* file_event.op: the operation (LSM hook) a file/exec event comes from. */
enum file_op {
	FOP_OPEN = 0,       /* file_open */
	FOP_EXEC = 1,       /* bprm_check_security */
	FOP_TRUNCATE = 2,   /* path_truncate */
	FOP_UNLINK = 3,     /* path_unlink */
	FOP_RMDIR = 4,      /* path_rmdir */
	FOP_RENAME = 5,     /* path_rename (source or target) */
	FOP_LINK = 6,       /* path_link (source or new name) */
	FOP_CHMOD = 7,      /* path_chmod */
	FOP_CHOWN = 8,      /* path_chown */
	FOP_MKNOD = 9,      /* path_mknod (also open with O_CREAT of a new file) */
	FOP_MKDIR = 10,     /* path_mkdir */
	FOP_SYMLINK = 11,   /* path_symlink */
	FOP_MMAP = 12,      /* mmap_file / file_mprotect with PROT_EXEC */
	FOP_SETATTR = 13,   /* inode_setattr: timestamps (utimensat), also on an fd */
	FOP_XATTR = 14,     /* inode_setxattr / inode_removexattr */
	FOP_CGROUP_MOVE = 15, /* cgroup_can_fork: clone3(CLONE_INTO_CGROUP) out of the container (killed) */
};

/*
 * inode_rules: exact file/exec rules pinned to the file's identity as well as its path, so
 * a hard link (shipped in the image) or any other name of the same inode is judged alike.
 * Written by the daemon per container (the same image file is another inode in another
 * container's overlay) and per ruleset (a policy change flips with the container entry).
 */
struct inode_key {
	__u64 cgroup_id;
	__u64 ino;              /* inode->i_ino */
	__u32 dev;              /* inode->i_sb->s_dev, kernel encoding (major << 20 | minor) */
	__u32 ruleset;
	__u32 kind;             /* PK_FILE_EXACT or PK_EXEC_EXACT */
	__u32 pad;
};

struct device_event {
	struct event_hdr hdr;
	__u32 dev_type;         /* DEV_TYPE_BLOCK / DEV_TYPE_CHAR */
	__u32 access;           /* ACCF_READ | ACCF_WRITE | ACCF_MKNOD */
	__u32 major;
	__u32 minor;
};

struct net_event {
	struct event_hdr hdr;
	__u32 family;           /* AF_INET / AF_INET6: the hook's (a v4-mapped UDP send arrives as AF_INET) */
	__u32 protocol;         /* IPPROTO_TCP / IPPROTO_UDP / ... */
	__u32 addr[4];          /* network byte order; IPv4 in addr[0] */
	__u16 port;             /* host byte order */
	__u16 pad;
	__u32 pad2;
};

struct sock_event {
	struct event_hdr hdr;
	__u32 family;
	__u32 sock_type;
	__u32 protocol;
	__u32 pad;
};

#endif /* ENFORCER_ABI_H */
