// SPDX-License-Identifier: GPL-2.0
/* Test-only BPF object for tests/pybpf: one map of each kind pybpf supports, a ring buffer,
 * cgroup programs that deny only loopback/raw-socket operations of the test's own cgroup,
 * SYSCALL programs for benchmarks/layout probes, and programs used to test autoload. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "testprog.h"

#define SOCK_RAW 3

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct test_key);
	__type(value, struct test_value);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} lru_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, struct deny_rule);
} deny_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct test_value);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct test_config);
} test_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32); /* 4 bytes: per-CPU stride rounds up to 8 */
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_by_name SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events2 SEC(".maps");

/* Ring buffer records are only built from a local, which clang does not describe in BTF:
 * this global makes struct test_event (and its enum) part of the object's BTF. */
struct test_event _event_btf_anchor = {};

static __always_inline struct test_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&test_config, &zero);
}

static __always_inline void emit(enum test_event_kind kind, __u8 proto, __u16 port, __u32 addr,
				 __u32 family, __u32 type)
{
	struct test_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->kind = kind;
	e->proto = proto;
	e->port = port;
	e->addr = addr;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->sock.family = family;
	e->sock.type = type;
	e->tail = 0xbeef;
	bpf_ringbuf_submit(e, 0);
}

SEC("cgroup/connect4")
int deny_connect4(struct bpf_sock_addr *ctx)
{
	__u32 ip = ctx->user_ip4;
	if ((bpf_ntohl(ip) >> 24) != 127)
		return 1; /* safety: this test program never denies a non-loopback address */
	struct lpm_v4_key k = { .prefixlen = 32, .addr = ip };
	struct deny_rule *r = bpf_map_lookup_elem(&deny_v4, &k);
	if (!r)
		return 1;
	__u16 port = bpf_ntohs(ctx->user_port);
	if (r->port && r->port != port)
		return 1;
	emit(EV_CONNECT4, ctx->protocol, port, ip, ctx->user_family, ctx->type);
	return 0; /* -EPERM to the caller */
}

/* Same decision, second program: used to swap the program behind a link. */
SEC("cgroup/connect4")
int allow_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sock_create")
int deny_raw_socket(struct bpf_sock *ctx)
{
	struct test_config *c = get_config();
	if (c && c->deny_raw && ctx->type == SOCK_RAW) {
		emit(EV_SOCK_CREATE, ctx->protocol, 0, 0, ctx->family, ctx->type);
		return 0;
	}
	return 1;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(count_forks, struct task_struct *parent, struct task_struct *child)
{
	struct test_config *c = get_config();
	if (!c || !c->watch_tgid || parent->tgid != c->watch_tgid)
		return 0;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&percpu_counters, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
	return 0;
}

/* Refused by this host's kernel (no BPF-LSM): tests switch its autoload off. */
SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file)
{
	return 0;
}

/* Rejected by the verifier (unchecked map lookup); "?" = autoload off by default. */
SEC("?tp_btf/sched_process_fork")
int BPF_PROG(verifier_reject, struct task_struct *parent, struct task_struct *child)
{
	__u32 key = 1;
	__u64 *v = bpf_map_lookup_elem(&lru_map, &key); /* hash lookup: may be NULL */
	return *v; /* NULL not checked */
}

static long fill_one(__u64 i, void *data)
{
	struct fill_args *a = data;
	struct test_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 1; /* ring full: stop */
	e->cgroup_id = 0;
	e->pid = 0;
	e->kind = EV_BENCH;
	e->proto = 0;
	e->port = 0;
	e->addr = 0;
	e->comm[0] = 0;
	e->sock.family = 0;
	e->sock.type = 0;
	e->u.seq = i;
	e->tail = 0;
	bpf_ringbuf_submit(e, a->wakeup ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	a->produced++;
	return 0;
}

/* Throughput producer: ctx = {count, produced}; run with bpf_prog_test_run_opts. */
SEC("syscall")
int fill_ring(struct fill_args *ctx)
{
	struct fill_args a = { .count = ctx->count, .produced = 0, .wakeup = ctx->wakeup };
	bpf_loop(a.count, fill_one, &a, 0);
	ctx->produced = a.produced;
	return 0;
}

SEC("syscall")
int layout_probe(struct layout_probe *ctx)
{
	ctx->event_size = sizeof(struct test_event);
	ctx->off_pid = __builtin_offsetof(struct test_event, pid);
	ctx->off_kind = __builtin_offsetof(struct test_event, kind);
	ctx->off_proto = __builtin_offsetof(struct test_event, proto);
	ctx->off_port = __builtin_offsetof(struct test_event, port);
	ctx->off_addr = __builtin_offsetof(struct test_event, addr);
	ctx->off_comm = __builtin_offsetof(struct test_event, comm);
	ctx->off_sock_type = __builtin_offsetof(struct test_event, sock.type);
	ctx->off_u = __builtin_offsetof(struct test_event, u);
	ctx->off_tail = __builtin_offsetof(struct test_event, tail);
	ctx->key_size = sizeof(struct test_key);
	ctx->off_key_ino = __builtin_offsetof(struct test_key, ino);
	ctx->value_size = sizeof(struct test_value);
	return 0;
}
