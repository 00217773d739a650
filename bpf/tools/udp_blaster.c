// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * udp_blaster: a small UDP load generator and sink for the L4 benchmark (bpf/tools/bench_udp.ts).
 * TypeScript cannot send fast enough to load the XDP path, so this is C with sendmmsg/recvmmsg.
 *
 *   udp_blaster send <ip> <port> <seconds> [flows=16] [size=64] [pps=0 (unlimited)]
 *       one socket per flow (distinct source ports → distinct Maglev picks), batches of 64
 *       datagrams per sendmmsg, round-robin over the flows; prints {"sent","seconds","pps"}.
 *   udp_blaster sink <port> <seconds>
 *       binds 0.0.0.0:<port> and drains with recvmmsg until <seconds> pass with the first
 *       datagram as the start; prints {"received","seconds","pps"}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_FLOWS 1024

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int blast(const char *ip, int port, double seconds, int flows, int size, double pps)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1 || flows < 1 || flows > MAX_FLOWS || size < 1 || size > 1472) {
		fprintf(stderr, "udp_blaster: bad arguments\n");
		return 2;
	}
	int fds[MAX_FLOWS];
	for (int i = 0; i < flows; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&dst, sizeof dst) < 0) {
			perror("udp_blaster: socket/connect");
			return 1;
		}
	}
	char *payload = calloc(1, size);
	struct iovec iov = { .iov_base = payload, .iov_len = size };
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof msgs);
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	long sent = 0;
	double start = now(), end = start + seconds, t = start;
	for (int f = 0; t < end; f = (f + 1) % flows) {
		int n = sendmmsg(fds[f], msgs, BATCH, 0);
		if (n > 0)
			sent += n;
		else if (errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
			perror("udp_blaster: sendmmsg");
			return 1;
		}
		t = now();
		if (pps > 0) {
			/* Pace: sleep while ahead of schedule. */
			double ahead = sent / pps - (t - start);
			if (ahead > 0.001) {
				struct timespec ts = { 0, (long)(ahead * 1e9) };
				nanosleep(&ts, NULL);
				t = now();
			}
		}
	}
	double took = now() - start;
	printf("{\"sent\":%ld,\"seconds\":%.3f,\"pps\":%.0f}\n", sent, took, sent / took);
	return 0;
}

static int sink(int port, double seconds)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int big = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("udp_blaster: bind");
		return 1;
	}
	struct timeval tv = { 0, 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	static char bufs[BATCH][2048];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof msgs);
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof bufs[i];
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	printf("{\"ready\":true}\n");
	fflush(stdout);
	long received = 0;
	double start = 0, deadline = now() + seconds + 30; /* waits up to 30 s for the first datagram */
	for (;;) {
		double t = now();
		if (t >= deadline)
			break;
		int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
		if (n > 0) {
			if (received == 0) {
				start = now();
				deadline = start + seconds;
			}
			received += n;
		}
	}
	double took = start > 0 ? now() - start : 0;
	printf("{\"received\":%ld,\"seconds\":%.3f,\"pps\":%.0f}\n", received, took, took > 0 ? received / took : 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "send") == 0)
		return blast(argv[2], atoi(argv[3]), atof(argv[4]), argc > 5 ? atoi(argv[5]) : 16,
			     argc > 6 ? atoi(argv[6]) : 64, argc > 7 ? atof(argv[7]) : 0);
	if (argc >= 4 && strcmp(argv[1], "sink") == 0)
		return sink(atoi(argv[2]), atof(argv[3]));
	fprintf(stderr, "usage: udp_blaster send <ip> <port> <seconds> [flows] [size] [pps] | sink <port> <seconds>\n");
	return 2;
}
