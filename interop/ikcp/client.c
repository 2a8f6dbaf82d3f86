/*
 * A raw-mode KCP client built on the reference C implementation (skywind3000's ikcp.c, fetched
 * and checksum-checked by scripts/test-setup.mjs, never committed). It connects a UDP socket to
 * --host:--port, sets the knobs a typical ikcp game client uses (ikcp_wndsize(128, 256),
 * ikcp_nodelay(1, 10, 2, 1), default 1400-byte MTU), queues --count messages at once, waits for
 * every echo, checks each against what it sent, and prints one JSON line:
 *   {"ok":true,"conv":..,"local":"ip:port","sent":N,"received":N,"bytes_sent":..,...}
 * Exit 0 when every echo arrived intact and in order, 1 otherwise, 2 on bad arguments.
 *
 * Message i has 1 + (i * 7919) % max_size bytes (at least 4 when max_size >= 4): its index in the
 * first 4 bytes (little-endian), then a pattern derived from i. With --empty-every K, every Kth
 * message (i % K == K - 1) is empty: ikcp sends a PUSH with len 0 and delivers it as a message of
 * 0 bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "ikcp.h"

static int sock = -1;
static long datagrams_out = 0;
static long datagrams_in = 0;
static long send_errors = 0;

static IUINT32 now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (IUINT32)((IUINT64)ts.tv_sec * 1000u + (IUINT64)ts.tv_nsec / 1000000u);
}

static int output(const char *buf, int len, ikcpcb *kcp, void *user) {
  (void)kcp;
  (void)user;
  if (send(sock, buf, (size_t)len, 0) < 0) {
    send_errors++;
  } else {
    datagrams_out++;
  }
  return 0;
}

static int message_size(long i, long max_size, long empty_every) {
  if (empty_every > 0 && i % empty_every == empty_every - 1) return 0;
  long size = 1 + (i * 7919) % max_size;
  if (max_size >= 4 && size < 4) size = 4;
  return (int)size;
}

static void fill_message(unsigned char *buf, long i, int size) {
  for (int k = 0; k < size; k++) buf[k] = (unsigned char)((i * 31 + k * 7) & 0xff);
  if (size >= 4) {
    buf[0] = (unsigned char)(i & 0xff);
    buf[1] = (unsigned char)((i >> 8) & 0xff);
    buf[2] = (unsigned char)((i >> 16) & 0xff);
    buf[3] = (unsigned char)((i >> 24) & 0xff);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: client --host IPV4 --port PORT [--count N] [--max-size BYTES] [--conv N]\n"
          "              [--empty-every K] [--timeout-ms MS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = -1, count = 500, max_size = 64, empty_every = 0, timeout_ms = 20000;
  unsigned long conv = 0x1d0c0001;
  for (int a = 1; a < argc; a++) {
    if (a + 1 >= argc) usage();
    const char *key = argv[a];
    const char *value = argv[++a];
    char *end = NULL;
    long n = strtol(value, &end, 0);
    if (strcmp(key, "--host") == 0) {
      host = value;
      continue;
    }
    if (*value == '\0' || *end != '\0' || n < 0) usage();
    if (strcmp(key, "--port") == 0) port = n;
    else if (strcmp(key, "--count") == 0) count = n;
    else if (strcmp(key, "--max-size") == 0) max_size = n;
    else if (strcmp(key, "--conv") == 0) conv = (unsigned long)n;
    else if (strcmp(key, "--empty-every") == 0) empty_every = n;
    else if (strcmp(key, "--timeout-ms") == 0) timeout_ms = n;
    else usage();
  }
  if (port <= 0 || port > 65535 || max_size < 1 || max_size > 65536 || count > 100000) usage();

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();
  sock = socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
    printf("{\"ok\":false,\"error\":\"socket: %s\"}\n", strerror(errno));
    return 1;
  }
  struct sockaddr_in local;
  socklen_t local_len = sizeof local;
  getsockname(sock, (struct sockaddr *)&local, &local_len);
  char local_ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &local.sin_addr, local_ip, sizeof local_ip);

  ikcpcb *kcp = ikcp_create((IUINT32)conv, NULL);
  kcp->output = output;
  ikcp_wndsize(kcp, 128, 256);
  ikcp_nodelay(kcp, 1, 10, 2, 1);

  unsigned char *msg = malloc((size_t)max_size + 4);
  unsigned char *got = malloc((size_t)max_size + 4);
  unsigned char datagram[65536];
  long bytes_sent = 0, bytes_received = 0, received = 0, mismatched = 0, empty_sent = 0,
       empty_received = 0;
  const char *error = NULL;

  IUINT32 start = now_ms();
  for (long i = 0; i < count; i++) {
    int size = message_size(i, max_size, empty_every);
    fill_message(msg, i, size);
    if (ikcp_send(kcp, (const char *)msg, size) < 0) {
      error = "ikcp_send refused a message";
      break;
    }
    bytes_sent += size;
    if (size == 0) empty_sent++;
  }

  while (error == NULL && received < count) {
    IUINT32 now = now_ms();
    if ((long)(now - start) > timeout_ms) {
      error = "timed out waiting for echoes";
      break;
    }
    ikcp_update(kcp, now);
    IUINT32 next = ikcp_check(kcp, now);
    int wait = (int)(next - now);
    if (wait < 0) wait = 0;
    if (wait > 10) wait = 10;
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    poll(&pfd, 1, wait);
    for (;;) {
      ssize_t n = recv(sock, datagram, sizeof datagram, MSG_DONTWAIT);
      if (n < 0) break; /* EAGAIN, or ECONNREFUSED while nothing listens yet: keep trying */
      datagrams_in++;
      ikcp_input(kcp, (const char *)datagram, (long)n);
    }
    for (;;) {
      int peek = ikcp_peeksize(kcp);
      if (peek < 0) break;
      if (peek > max_size) {
        error = "an echo is larger than any message sent";
        break;
      }
      int n = ikcp_recv(kcp, (char *)got, (int)max_size);
      if (n < 0) break;
      int size = message_size(received, max_size, empty_every);
      fill_message(msg, received, size);
      if (n != size || memcmp(got, msg, (size_t)size) != 0) mismatched++;
      if (n == 0) empty_received++;
      bytes_received += n;
      received++;
      if (received == count) break;
    }
  }
  /* Let the last ACKs leave so the server's side of the echo is acknowledged. */
  ikcp_update(kcp, now_ms() + 20);
  ikcp_flush(kcp);

  int ok = error == NULL && mismatched == 0 && received == count;
  printf("{\"ok\":%s,\"conv\":%lu,\"local\":\"%s:%u\",\"sent\":%ld,\"received\":%ld,"
         "\"bytes_sent\":%ld,\"bytes_received\":%ld,\"empty_sent\":%ld,\"empty_received\":%ld,"
         "\"mismatched\":%ld,\"datagrams_out\":%ld,\"datagrams_in\":%ld,\"send_errors\":%ld,"
         "\"elapsed_ms\":%u%s%s%s}\n",
         ok ? "true" : "false", conv, local_ip, (unsigned)ntohs(local.sin_port), count, received,
         bytes_sent, bytes_received, empty_sent, empty_received, mismatched, datagrams_out,
         datagrams_in, send_errors, (unsigned)(now_ms() - start), error ? ",\"error\":\"" : "",
         error ? error : "", error ? "\"" : "");
  ikcp_release(kcp);
  free(msg);
  free(got);
  close(sock);
  return ok ? 0 : 1;
}
