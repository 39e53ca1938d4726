// SPDX-License-Identifier: GPL-2.0-only
/*
 * Network rules: cgroup connect4/6 and sendmsg4/6 (egress), bind4/6 (ingress) on every
 * container's cgroup, and under them cgroup_skb egress/ingress as the backstop that judges
 * what actually leaves and arrives.
 *
 * The socket hooks answer EPERM early for TCP and UDP, on the final destination: a connect
 * or send to 0.0.0.0 goes to the socket's bound address or 127.0.0.1, to :: goes to ::1,
 * and that is what is judged. The packet programs judge (destination or local address, IP
 * protocol, destination port) from the IP header and the first bytes of the L4 header, so
 * raw sockets, ICMP ping sockets, SCTP, DCCP and UDP-Lite meet the same rules:
 *   egress:  every packet of a container socket, except a kernel TCP socket's packets other
 *            than the connection's first SYN (its connect was judged; replies of accepted
 *            connections are not egress);
 *   ingress: packets arriving at a listening socket (connection requests) and at a socket
 *            that is not connected (datagrams accepted at the local address and port),
 *            whatever family the socket has (a dual-stack :: socket meets IPv4 rules for
 *            IPv4 packets).
 * A packet whose port cannot be read (a later fragment, an IPv6 extension header chain
 * longer than the walk) is denied if any deny rule covers its address and protocol.
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
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define TCP_ESTABLISHED_ 1
#define TCP_CLOSE_ 7
#define TCP_LISTEN_ 10
#define IPV6_EXT_WALK 6

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


struct verdict {
	__u32 rule_id;
	__u8 action;
};

/*
 * The first entry for (address, protocol, port) decides. port_known false (a packet whose
 * port cannot be read): deny if any deny entry covers the address and protocol.
 */
static __always_inline struct verdict judge(struct container *ct, __u32 dir, const __u32 *addr,
					    bool v6, __u32 protocol, __u16 port, bool port_known)
{
	struct verdict v = { .rule_id = RULE_NONE, .action = ACT_NONE };
	struct net_rules *rules;

	if (v6) {
		struct net6_key k = { .prefixlen = NET_KEY_HEADER_BITS + 128, .ruleset = ct->ruleset,
				      .direction = dir };
		__builtin_memcpy(k.addr, addr, 16);
		rules = bpf_map_lookup_elem(&net6_rules, &k);
	} else {
		struct net4_key k = { .prefixlen = NET_KEY_HEADER_BITS + 32, .ruleset = ct->ruleset,
				      .direction = dir };
		__builtin_memcpy(k.addr, addr, 4);
		rules = bpf_map_lookup_elem(&net4_rules, &k);
	}
	if (!rules)
		return v;

	for (__u32 i = 0; i < ABI_NET_SLOTS; i++) {
		struct net_entry *e = &rules->e[i];

		if (i >= rules->count)
			break;
		if (e->protocol != NET_PROTO_ANY && e->protocol != protocol)
			continue;
		if (port_known) {
			if (port < e->port_lo || port > e->port_hi)
				continue;
		} else if (e->action != ACT_DENY) {
			continue;
		}
		v.action = e->action;
		v.rule_id = e->rule_id;
		break;
	}
	return v;
}

/*
 * No rule matched: the direction's posture decides (allow when none is set). The runtime
 * makes no connections of a container's own, so every task of the container is judged.
 */
static __always_inline void net_posture(struct container *ct, __u32 dir, struct verdict *v)
{
	__u32 cls = dir == NET_EGRESS ? PST_EGRESS : PST_INGRESS;
	__u8 p;

	if (v->action != ACT_NONE || !ct->postures)
		return;
	p = posture_of(ct, cls);
	if (p >= ACT_AUDIT) {
		v->action = p;
		v->rule_id = RULE_POSTURE_BASE + cls;
	}
}

static __always_inline bool is_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

static __always_inline bool is_any6(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* The fold target of a network event: address, port, protocol and family. */
static __always_inline __u64 net_target(const struct net_event *ev)
{
	__u64 h = fold_mix(((__u64)ev->family << 32) | ev->protocol, ev->port);

	h = fold_mix(h, ((__u64)ev->addr[0] << 32) | ev->addr[1]);
	return fold_mix(h, ((__u64)ev->addr[2] << 32) | ev->addr[3]);
}

static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 dir, __u16 ev_type, bool v6)
{
	__u32 flag = dir == NET_EGRESS ? CT_NET_EGRESS : CT_NET_INGRESS;
	struct bpf_sock *sk = ctx->sk;
	struct verdict vd;
	struct net_event ev;
	struct container *ct;
	__u32 protocol, key[4];
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
		/* The kernel sends to :: as to ::1 (::ffff:127.0.0.1 from a v4-mapped bound socket). */
		if (dir == NET_EGRESS && is_any6(ev.addr)) {
			__u32 src[4] = { sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3] };

			if (is_mapped(src)) {
				ev.addr[2] = bpf_htonl(0xffff);
				ev.addr[3] = bpf_htonl(0x7f000001);
			} else {
				ev.addr[3] = bpf_htonl(1);
			}
		}
		mapped = is_mapped(ev.addr);
	} else {
		ev.addr[0] = ctx->user_ip4;
		/* The kernel routes 0.0.0.0 to the socket's bound address, else to 127.0.0.1. */
		if (dir == NET_EGRESS && ev.addr[0] == 0)
			ev.addr[0] = sk->src_ip4 ? sk->src_ip4 : bpf_htonl(0x7f000001);
	}
	protocol = ctx->protocol;
	port = bpf_ntohs(ctx->user_port & 0xffff);

	if (v6 && !mapped) {
		vd = judge(ct, dir, ev.addr, true, protocol, port, true);
	} else {
		key[0] = mapped ? ev.addr[3] : ev.addr[0];
		vd = judge(ct, dir, key, false, protocol, port, true);
	}
	net_posture(ct, dir, &vd);
	if (vd.action != ACT_DENY && vd.action != ACT_AUDIT)
		return 1;

	ev.family = v6 ? AF_INET6 : AF_INET;
	ev.protocol = protocol;
	ev.port = port;
	report(&ev.hdr, sizeof(ev), ev_type, cgid, ct, vd.rule_id, vd.action, net_target(&ev));
	return vd.action == ACT_DENY ? 0 : 1;
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

/* ----- packets: cgroup_skb egress / ingress ---------------------------------------------- */

/* The container a packet's socket belongs to (its cgroup, or the nearest container ancestor). */
static __always_inline struct container *skb_container(struct __sk_buff *skb, __u64 *cgid)
{
	__u64 id = bpf_skb_cgroup_id(skb), anc;
	struct container *ct = bpf_map_lookup_elem(&containers, &id);

	if (ct) {
		*cgid = id;
		return ct;
	}
	for (int level = 1; level < ABI_MAX_CGROUP_LEVEL; level++) {
		anc = bpf_skb_ancestor_cgroup_id(skb, level);
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

struct pkt {
	__u32 addr[4];          /* destination: the remote address (egress) or the local one (ingress) */
	__u32 protocol;         /* IP protocol of the L4 header */
	__u32 l4_off;
	__u16 port;             /* destination port, host order; 0 for protocols without ports */
	bool v6;
	bool port_known;
	bool l4_known;          /* the L4 header was found (not a later fragment, not lost in ext headers) */
};

static __always_inline bool has_ports(__u32 protocol)
{
	/* TCP, UDP, DCCP, SCTP, UDP-Lite: source and destination port lead the header */
	return protocol == 6 || protocol == 17 || protocol == 33 || protocol == 132 ||
	       protocol == 136;
}

static __always_inline int parse_v4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
		return -1;
	p->addr[0] = ip.daddr;
	p->protocol = ip.protocol;
	p->l4_off = ip.ihl * 4;
	p->l4_known = (bpf_ntohs(ip.frag_off) & 0x1fff) == 0;
	return 0;
}

static __always_inline int parse_v6(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv6hdr ip;
	__u32 off = sizeof(ip);
	__u8 next;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
		return -1;
	__builtin_memcpy(p->addr, &ip.daddr, 16);
	p->v6 = true;
	next = ip.nexthdr;
	p->l4_known = false;
	for (int i = 0; i < IPV6_EXT_WALK; i++) {
		__u8 h[4];

		if (next != 0 && next != 43 && next != 44 && next != 60 && next != 51) {
			p->l4_known = true;
			break;
		}
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			break;
		if (next == 44) {
			/* fragment header: a later fragment carries no L4 header */
			if (((h[2] << 8 | h[3]) >> 3) != 0)
				break;
			off += 8;
		} else if (next == 51) {
			off += (h[1] + 2) * 4;
		} else {
			off += (h[1] + 1) * 8;
		}
		next = h[0];
	}
	p->protocol = next;
	p->l4_off = off;
	return 0;
}

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, __u8 *tcp_flags)
{
	__u8 l4[14];

	__builtin_memset(p, 0, sizeof(*p));
	*tcp_flags = 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (parse_v4(skb, p))
			return -1;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (parse_v6(skb, p))
			return -1;
	} else {
		return -1;
	}
	if (!p->l4_known)
		return 0;
	if (!has_ports(p->protocol)) {
		p->port_known = true; /* ICMP and others: port 0 */
		return 0;
	}
	if (p->protocol == IPPROTO_TCP_) {
		if (bpf_skb_load_bytes(skb, p->l4_off, l4, 14))
			return 0;
		*tcp_flags = l4[13];
	} else if (bpf_skb_load_bytes(skb, p->l4_off, l4, 4)) {
		return 0;
	}
	p->port = (__u16)l4[2] << 8 | l4[3];
	p->port_known = true;
	return 0;
}

#define TCPF_SYN 0x02
#define TCPF_ACK 0x10

/* Which packets a socket hook did not already judge, or judged on what the caller wrote. */
static __always_inline bool to_judge(struct __sk_buff *skb, __u32 dir, struct pkt *p, __u8 tcp_flags,
				     bool *hooked)
{
	struct bpf_sock *sk = skb->sk;
	bool kernel_tcp;

	*hooked = false;
	if (!sk)
		return true;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return true;
	/* read every field up front: the verifier refuses a computed pointer into a socket */
	__u32 type = sk->type, protocol = sk->protocol, state = sk->state;

	barrier_var(type);
	barrier_var(protocol);
	barrier_var(state);
	kernel_tcp = type == SOCK_STREAM_ && protocol == IPPROTO_TCP_ && p->protocol == IPPROTO_TCP_;
	/* connect4/6 and sendmsg4/6 judged this socket's destination already (and audited it) */
	*hooked = dir == NET_EGRESS &&
		  (kernel_tcp || (type == SOCK_DGRAM_ && protocol == p->protocol &&
				  (protocol == 17 || protocol == 136)));
	if (dir == NET_EGRESS)
		/* a kernel TCP connection is judged by its first SYN (Fast Open data rides on it) */
		return !kernel_tcp || (tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
	/* ingress: connection requests and datagrams for a socket that is not connected */
	if (kernel_tcp)
		return state == TCP_LISTEN_;
	return state != TCP_ESTABLISHED_;
}

static __always_inline void fill_pkt_hdr(struct event_hdr *h, __u16 type, __u64 cgid,
					 __u32 ruleset, __u32 rule_id, __u8 action)
{
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = cgid;
	h->rule_id = rule_id;
	h->ruleset = ruleset;
	h->type = type;
	h->action = action;
	if (type == EV_EGRESS) {
		/* sent from the sender's own context (sendmsg, connect) */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		h->pid = BPF_CORE_READ(task, tgid);
		h->uid = BPF_CORE_READ(task, cred, uid.val);
		bpf_probe_read_kernel(h->comm, sizeof(h->comm), &task->comm);
	}
	/* ingress runs in softirq for whatever task was on the CPU: pid, uid and comm stay 0 */
}

static __always_inline int decide_skb(struct __sk_buff *skb, __u32 dir, __u16 ev_type)
{
	__u32 flag = dir == NET_EGRESS ? CT_NET_EGRESS : CT_NET_INGRESS;
	struct verdict vd;
	struct net_event ev;
	struct container *ct;
	struct pkt p;
	__u8 tcp_flags;
	__u64 cgid = 0;
	bool hooked;

	ct = skb_container(skb, &cgid);
	if (!ct || !(ct->flags & flag))
		return 1;
	if (parse(skb, &p, &tcp_flags))
		return 1; /* not IP: the inet rules do not apply */
	if (!to_judge(skb, dir, &p, tcp_flags, &hooked))
		return 1;
	if (!p.l4_known)
		p.protocol = NET_PROTO_ANY; /* unknown L4: any deny of the address applies */
	if (p.protocol == NET_PROTO_ANY) {
		/* judge() matches NET_PROTO_ANY entries only; look for any protocol's deny */
		vd = judge(ct, dir, p.addr, p.v6, IPPROTO_TCP_, 0, false);
		if (vd.action != ACT_DENY)
			vd = judge(ct, dir, p.addr, p.v6, 17, 0, false);
	} else {
		vd = judge(ct, dir, p.addr, p.v6, p.protocol, p.port, p.port_known);
	}
	if (p.port_known)
		net_posture(ct, dir, &vd); /* an unreadable port matched deny entries only */
	if (vd.action != ACT_DENY && (vd.action != ACT_AUDIT || hooked))
		return 1; /* a socket hook's audit record stands for the operation: no second one */

	__builtin_memset(&ev, 0, sizeof(ev));
	fill_pkt_hdr(&ev.hdr, ev_type, cgid, ct->ruleset, vd.rule_id, vd.action);
	__builtin_memcpy(ev.addr, p.addr, 16);
	ev.family = p.v6 ? AF_INET6 : AF_INET;
	ev.protocol = p.protocol;
	ev.port = p.port;
	report_filled(&ev.hdr, sizeof(ev), net_target(&ev));
	return vd.action == ACT_DENY ? 0 : 1;
}

SEC("cgroup_skb/egress")
int enforcer_egress(struct __sk_buff *skb)
{
	return decide_skb(skb, NET_EGRESS, EV_EGRESS);
}

SEC("cgroup_skb/ingress")
int enforcer_ingress(struct __sk_buff *skb)
{
	return decide_skb(skb, NET_INGRESS, EV_INGRESS);
}
