/*
 * probe: one system call (or a timed loop of them) as a test asks, inside a container.
 * Prints "ok" or the errno name on stdout; exit 0 for ok, 1 otherwise, 2 for bad usage.
 *
 *   probe connect ADDR PORT tcp|udp     socket + connect (ADDR with ':' is IPv6)
 *   probe sendto ADDR PORT              unconnected UDP sendto (the sendmsg hooks)
 *   probe bind ADDR PORT tcp|udp
 *   probe socket FAMILY TYPE            FAMILY: inet inet6 packet unix; TYPE: stream dgram raw packet
 *   probe open PATH r|w|rw
 *   probe mknod PATH c|b MAJOR MINOR
 *   probe time-connect ADDR PORT N      N x (socket, connect, close); prints ns per iteration
 *   probe time-open PATH N              N x (open, close) read-only; prints ns per iteration
 *   probe time-sendto ADDR PORT N       N x UDP sendto on one socket; prints ns per iteration
 *   probe connect-from SRC ADDR PORT tcp|udp   bind to SRC:0 first (connect to 0.0.0.0 goes to SRC)
 *   probe sendto-from SRC ADDR PORT     the same for an unconnected UDP sendto
 *   probe raw ADDR PROTO PORT           SOCK_RAW of IP protocol PROTO, a hand-built L4 header
 *                                       (source port, destination PORT, ...) sent to ADDR
 *   probe ping ADDR                     ICMP (ICMPv6) echo request from a ping socket
 *   probe tfo ADDR PORT                 TCP Fast Open: sendto(MSG_FASTOPEN) with data
 *   probe mptcp ADDR PORT               connect an IPPROTO_MPTCP socket
 *   probe uring-connect ADDR PORT       connect a TCP socket through io_uring (IORING_OP_CONNECT)
 *   probe sctp ADDR PORT                connect an IPPROTO_SCTP stream socket
 *   probe clone-into DIR                clone3(CLONE_INTO_CGROUP) with the cgroup directory DIR;
 *                                       the child prints the cgroup2 path it started in
 *                                       on stderr and exits
 *   probe accept-via LISTEN ADDR PORT tcp|udp
 *                                       a socket bound to LISTEN:PORT (0.0.0.0 or a dual-stack
 *                                       ::) is reached at ADDR:PORT by a client in the same
 *                                       process: prints "accepted" / "received", or "timeout"
 *                                       when nothing arrived within 0.8 s (TCP retries its SYN
 *                                       after 1 s: one SYN is sent)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EADDRINUSE: return "EADDRINUSE";
	case ENETUNREACH: return "ENETUNREACH";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EINPROGRESS: return "EINPROGRESS";
	case ENOSYS: return "ENOSYS";
	default: return strerror(e);
	}
}

static int result(int rc)
{
	if (rc < 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	printf("ok\n");
	return 0;
}

static socklen_t addr(const char *text, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1)
			exit(2);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	if (inet_pton(AF_INET, text, &a->sin_addr) != 1)
		exit(2);
	return sizeof(*a);
}

static int sock_type(const char *t)
{
	if (!strcmp(t, "tcp") || !strcmp(t, "stream"))
		return SOCK_STREAM;
	if (!strcmp(t, "udp") || !strcmp(t, "dgram"))
		return SOCK_DGRAM;
	if (!strcmp(t, "raw"))
		return SOCK_RAW;
	if (!strcmp(t, "packet"))
		return SOCK_PACKET; /* obsolete; the kernel makes it an AF_PACKET socket */
	exit(2);
}

static int family(const char *f)
{
	if (!strcmp(f, "inet")) return AF_INET;
	if (!strcmp(f, "inet6")) return AF_INET6;
	if (!strcmp(f, "packet")) return AF_PACKET;
	if (!strcmp(f, "unix")) return AF_UNIX;
	exit(2);
}


static long long now_ns(void);

static int bind_src(int fd, const char *src)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(src, 0, &ss);

	return bind(fd, (struct sockaddr *)&ss, len);
}

/* One connect through io_uring: the kernel's IORING_OP_CONNECT, no liburing needed. */
static int uring_connect(int fd, struct sockaddr *sa, socklen_t len)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return -1;
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQ_RING);
	char *cq = mmap(0, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe),
					 PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return -1;
	memset(&sqes[0], 0, sizeof(sqes[0]));
	sqes[0].opcode = IORING_OP_CONNECT;
	sqes[0].fd = fd;
	sqes[0].addr = (unsigned long)sa;
	sqes[0].off = len;
	unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
	unsigned *array = (unsigned *)(sq + p.sq_off.array);
	array[*tail & *(unsigned *)(sq + p.sq_off.ring_mask)] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -1;
	unsigned head = *(unsigned *)(cq + p.cq_off.head);
	struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
				   (head & *(unsigned *)(cq + p.cq_off.ring_mask));
	if (cqe->res < 0) {
		errno = -cqe->res;
		return -1;
	}
	return 0;
}

/* The L4 header of a raw datagram: ports first (UDP, SCTP, DCCP, UDP-Lite all start so). */
static int raw_send(const char *dst, int proto, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(dst, 0, &ss);
	unsigned char pkt[16] = { 0 };
	int fd = socket(ss.ss_family, SOCK_RAW, proto);

	if (fd < 0)
		return result(fd);
	pkt[0] = 0x9c; pkt[1] = 0x40;            /* source port 40000 */
	pkt[2] = port >> 8; pkt[3] = port & 0xff;
	if (proto == IPPROTO_UDP) {
		pkt[5] = sizeof(pkt);            /* UDP length; checksum 0 (none, IPv4) */
		pkt[8] = 'x';
	}
	return result(sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss, len));
}

static int ping(const char *dst)
{
	struct sockaddr_storage ss;
	socklen_t len = addr(dst, 0, &ss);
	int v6 = ss.ss_family == AF_INET6;
	unsigned char echo[16] = { v6 ? 128 : 8 };
	int fd = socket(ss.ss_family, SOCK_DGRAM, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);

	if (fd < 0)
		return result(fd);
	return result(sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&ss, len));
}

static int accept_via(const char *listen_at, const char *dst, int port, int type)
{
	struct sockaddr_storage ls, ds;
	socklen_t llen = addr(listen_at, port, &ls), dlen = addr(dst, port, &ds);
	int srv = socket(ls.ss_family, type, 0), cli, off = 0, one = 1;

	if (srv < 0)
		return result(srv);
	setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls.ss_family == AF_INET6) /* dual-stack, as busybox nc -l and most servers are */
		setsockopt(srv, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	if (bind(srv, (struct sockaddr *)&ls, llen) < 0)
		return result(-1);
	if (type == SOCK_STREAM && listen(srv, 4) < 0)
		return result(-1);
	cli = socket(ds.ss_family, type | SOCK_NONBLOCK, 0);
	if (cli < 0)
		return result(cli);
	if (type == SOCK_STREAM) {
		if (connect(cli, (struct sockaddr *)&ds, dlen) < 0 && errno != EINPROGRESS)
			return result(-1);
	} else if (sendto(cli, "x", 1, 0, (struct sockaddr *)&ds, dlen) < 0) {
		return result(-1);
	}
	struct pollfd pfd = { .fd = srv, .events = POLLIN };
	if (poll(&pfd, 1, 800) == 1) {
		printf(type == SOCK_STREAM ? "accepted\n" : "received\n");
		return 0;
	}
	printf("timeout\n");
	return 1;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* clone3 straight into the cgroup at dir; the child shows where it landed. */
static int clone_into(const char *dir)
{
	struct clone_args args;
	char line[512];
	int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long pid;

	if (cg < 0)
		return result(cg);
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (__u64)cg;
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		FILE *f = fopen("/proc/self/cgroup", "r");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "0::", 3))
				fprintf(stderr, "child in %s", line + 3);
		_exit(0);
	}
	if (pid < 0)
		return result(-1);
	waitpid(pid, NULL, 0);
	return result(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (argc < 3)
		return 2;
	const char *op = argv[1];
	if (!strcmp(op, "connect") && argc == 5) {
		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, sock_type(argv[4]), 0);
		if (fd < 0)
			return result(fd);
		return result(connect(fd, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "sendto") && argc == 4) {
		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, SOCK_DGRAM, 0);
		if (fd < 0)
			return result(fd);
		return result(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "bind") && argc == 5) {
		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, sock_type(argv[4]), 0);
		if (fd < 0)
			return result(fd);
		return result(bind(fd, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "socket") && argc == 4) {
		int fam = family(argv[2]), type = sock_type(argv[3]), proto = 0;

		if (type == SOCK_RAW && fam != AF_PACKET) /* raw IP needs a protocol */
			proto = fam == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
		return result(socket(fam, type, proto));
	}
	if (!strcmp(op, "open") && argc == 4) {
		int flags = !strcmp(argv[3], "rw") ? O_RDWR : !strcmp(argv[3], "w") ? O_WRONLY : O_RDONLY;
		return result(open(argv[2], flags));
	}
	if (!strcmp(op, "mknod") && argc == 6) {
		mode_t kind = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
		return result(mknod(argv[2], kind | 0600, makedev(atoi(argv[4]), atoi(argv[5]))));
	}
	if (!strcmp(op, "time-connect") && argc == 5) {
		long n = atol(argv[4]);
		len = addr(argv[2], atoi(argv[3]), &ss);
		long long t0 = now_ns();
		for (long i = 0; i < n; i++) {
			fd = socket(ss.ss_family, SOCK_STREAM, 0);
			connect(fd, (struct sockaddr *)&ss, len);
			close(fd);
		}
		printf("%lld\n", (now_ns() - t0) / n);
		return 0;
	}
	if (!strcmp(op, "time-open") && argc == 4) {
		long n = atol(argv[3]);
		long long t0 = now_ns();
		for (long i = 0; i < n; i++)
			close(open(argv[2], O_RDONLY));
		printf("%lld\n", (now_ns() - t0) / n);
		return 0;
	}
	if (!strcmp(op, "connect-from") && argc == 6) {
		len = addr(argv[3], atoi(argv[4]), &ss);
		fd = socket(ss.ss_family, sock_type(argv[5]), 0);
		if (fd < 0 || bind_src(fd, argv[2]) < 0)
			return result(-1);
		return result(connect(fd, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "sendto-from") && argc == 5) {
		len = addr(argv[3], atoi(argv[4]), &ss);
		fd = socket(ss.ss_family, SOCK_DGRAM, 0);
		if (fd < 0 || bind_src(fd, argv[2]) < 0)
			return result(-1);
		return result(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "raw") && argc == 5)
		return raw_send(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(op, "ping") && argc == 3)
		return ping(argv[2]);
	if (!strcmp(op, "tfo") && argc == 4) {
		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0)
			return result(fd);
		return result(sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len));
	}
	if ((!strcmp(op, "mptcp") || !strcmp(op, "sctp") || !strcmp(op, "uring-connect")) && argc == 4) {
		int proto = !strcmp(op, "mptcp") ? IPPROTO_MPTCP : !strcmp(op, "sctp") ? IPPROTO_SCTP : 0;

		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, SOCK_STREAM, proto);
		if (fd < 0)
			return result(fd);
		if (!strcmp(op, "uring-connect"))
			return result(uring_connect(fd, (struct sockaddr *)&ss, len));
		return result(connect(fd, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "clone-into") && argc == 3)
		return clone_into(argv[2]);
	if (!strcmp(op, "accept-via") && argc == 6)
		return accept_via(argv[2], argv[3], atoi(argv[4]), sock_type(argv[5]));
	if (!strcmp(op, "time-sendto") && argc == 5) {
		long n = atol(argv[4]);
		len = addr(argv[2], atoi(argv[3]), &ss);
		fd = socket(ss.ss_family, SOCK_DGRAM, 0);
		long long t0 = now_ns();
		for (long i = 0; i < n; i++)
			sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len);
		printf("%lld\n", (now_ns() - t0) / n);
		return 0;
	}
	return 2;
}
