/*
 * probe: one system call (or a timed loop of them) as a test asks, inside a container.
 * Prints "ok" or the errno name on stdout; exit 0 for ok, 1 otherwise, 2 for bad usage.
 *
 *   probe connect ADDR PORT tcp|udp     socket + connect (ADDR with ':' is IPv6)
 *   probe sendto ADDR PORT              unconnected UDP sendto (the sendmsg hooks)
 *   probe bind ADDR PORT tcp|udp
 *   probe socket FAMILY TYPE            FAMILY: inet inet6 packet unix; TYPE: stream dgram raw
 *   probe open PATH r|w|rw
 *   probe mknod PATH c|b MAJOR MINOR
 *   probe time-connect ADDR PORT N      N x (socket, connect, close); prints ns per iteration
 *   probe time-open PATH N              N x (open, close) read-only; prints ns per iteration
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
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
	return 2;
}
