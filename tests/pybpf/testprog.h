/* Types shared by testprog.bpf.c and (through BTF, never by hand) the Python tests. */
#ifndef PYBPF_TESTPROG_H
#define PYBPF_TESTPROG_H

enum test_event_kind {
	EV_CONNECT4 = 1,
	EV_SOCK_CREATE = 2,
	EV_BENCH = 99,
};

/* Deliberately has holes (after proto, at the end) to prove padding comes out right. */
struct test_event {
	__u64 cgroup_id;
	__u32 pid;
	enum test_event_kind kind;
	__u8 proto;
	__u16 port; /* host byte order */
	__u32 addr; /* network byte order */
	char comm[16];
	struct {
		__u32 family;
		__u32 type;
	} sock;
	union {
		__u64 seq;
		__u32 words[2];
	} u;
	__u16 tail;
};

struct test_key {
	__u32 id;
	__u16 port;
	__u8 proto;
	__u64 ino;
};

struct test_value {
	__u64 hits;
	__u32 flags;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr; /* network byte order */
};

struct deny_rule {
	__u16 port; /* 0 = any port */
	__u16 rule_id;
};

struct test_config {
	__u32 watch_tgid; /* count forks of this process (tp_btf test) */
	__u32 deny_raw;   /* sock_create denies SOCK_RAW when non-zero */
};

struct fill_args {
	__u32 count;
	__u32 produced;
	__u32 wakeup; /* non-zero: wake the consumer (poll); zero: consume() only, fastest */
};

/* Filled by the layout_probe program: what the C compiler thinks of the layouts. */
struct layout_probe {
	__u32 event_size;
	__u32 off_pid;
	__u32 off_kind;
	__u32 off_proto;
	__u32 off_port;
	__u32 off_addr;
	__u32 off_comm;
	__u32 off_sock_type;
	__u32 off_u;
	__u32 off_tail;
	__u32 key_size;
	__u32 off_key_ino;
	__u32 value_size;
};

#endif
