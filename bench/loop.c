// SPDX-License-Identifier: Apache-2.0
/*
 * The syscall loops the benchmarks time: static, so it runs the same in the busybox image
 * and on the host, and small, so the figure is the kernel's and not a harness's.
 *
 *   loop serve                 read commands from stdin, one per line, answer each with
 *                              "ok NS N ERRORS" (NS: monotonic ns for all N iterations);
 *   loop CMD ARGS...           run one command and print the same answer;
 *   loop nop                   exit 0 at once (what `exec` executes).
 * Commands:
 *   open PATH N                open(O_RDONLY) + close, N times (a failed open is an ERROR)
 *   exec PATH N                fork + execve(PATH, {PATH, "nop"}) + waitpid, N times
 *   connect ADDR PORT N        UDP socket + connect(ADDR:PORT) + close, N times (IPv4 only)
 *   tcpconnect ADDR PORT N     TCP socket + connect(ADDR:PORT) + close, N times: a SYN leaves
 *                              and a RST comes back (nothing listens: ECONNREFUSED is no ERROR)
 *   sendto ADDR PORT N         one UDP socket, N x sendto(ADDR:PORT) of one byte: N packets
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long do_open(const char *path, long n)
{
	long errors = 0;

	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			errors++;
		else
			close(fd);
	}
	return errors;
}

static long do_exec(const char *path, long n)
{
	char *argv[] = {(char *)path, "nop", NULL};
	char *envp[] = {NULL};
	long errors = 0;

	for (long i = 0; i < n; i++) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			errors++;
			continue;
		}
		if (pid == 0) {
			execve(path, argv, envp);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			errors++;
	}
	return errors;
}

static long do_connect(const char *addr, int port, long n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	long errors = 0;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return n;
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			errors++;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			errors++;
		close(fd);
	}
	return errors;
}

static long do_tcpconnect(const char *addr, int port, long n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	long errors = 0;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return n;
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			errors++;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != ECONNREFUSED)
			errors++;
		close(fd);
	}
	return errors;
}

static long do_sendto(const char *addr, int port, long n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	long errors = 0;
	int fd;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return n;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return n;
	for (long i = 0; i < n; i++)
		/* a closed port answers with ICMP unreachable, which fails the next send: retry-free count */
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != ECONNREFUSED)
			errors++;
	close(fd);
	return errors;
}

/* Runs one command given as words; prints the answer line. Returns 0, or -1 on bad input. */
static int run(int argc, char **argv)
{
	long long t0, t1;
	long n, errors;

	if (argc == 3 && !strcmp(argv[0], "open")) {
		n = atol(argv[2]);
		t0 = now_ns();
		errors = do_open(argv[1], n);
	} else if (argc == 3 && !strcmp(argv[0], "exec")) {
		n = atol(argv[2]);
		t0 = now_ns();
		errors = do_exec(argv[1], n);
	} else if (argc == 4 && !strcmp(argv[0], "connect")) {
		n = atol(argv[3]);
		t0 = now_ns();
		errors = do_connect(argv[1], atoi(argv[2]), n);
	} else if (argc == 4 && !strcmp(argv[0], "tcpconnect")) {
		n = atol(argv[3]);
		t0 = now_ns();
		errors = do_tcpconnect(argv[1], atoi(argv[2]), n);
	} else if (argc == 4 && !strcmp(argv[0], "sendto")) {
		n = atol(argv[3]);
		t0 = now_ns();
		errors = do_sendto(argv[1], atoi(argv[2]), n);
	} else {
		printf("error unknown command\n");
		fflush(stdout);
		return -1;
	}
	t1 = now_ns();
	printf("ok %lld %ld %ld\n", t1 - t0, n, errors);
	fflush(stdout);
	return 0;
}

static int serve(void)
{
	char line[8192];

	while (fgets(line, sizeof(line), stdin)) {
		char *words[8];
		int argc = 0;

		for (char *tok = strtok(line, " \t\n"); tok && argc < 8; tok = strtok(NULL, " \t\n"))
			words[argc++] = tok;
		if (argc == 0)
			continue;
		if (!strcmp(words[0], "quit"))
			break;
		run(argc, words);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "nop"))
		return 0;
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc >= 2)
		return run(argc - 1, argv + 1) ? 2 : 0;
	fprintf(stderr, "usage: loop serve | loop nop | loop open PATH N | loop exec PATH N | "
			"loop connect|tcpconnect|sendto ADDR PORT N\n");
	return 2;
}
