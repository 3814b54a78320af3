/* tests/engine/netif_client.c: a program linked with the library that
 * configures the engine itself (usock_netif_configure) and talks to a
 * kernel echo server (peer.py tcp-echo-server) through it: a non-blocking
 * connect (EINPROGRESS, then EPOLLOUT and SO_ERROR 0), then BYTES of a
 * pattern sent while the echo is read back with epoll, compared byte by
 * byte, SHUT_WR and end-of-stream; then a second connection closed with
 * SO_LINGER 0 (the server sees a reset), and a bad configuration refused.
 *
 *   netif_client TAP ADDRS SERVER PORT BYTES
 * Prints "ok ..." lines, or "FAIL ..." and exits 1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "userspacesock.h"

static void fail(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  exit(1);
}

static unsigned char pat(size_t i) { return (unsigned char)(i * 131 + (i >> 12) * 7 + 3); }

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s TAP ADDRS SERVER PORT BYTES\n", argv[0]);
    return 2;
  }
  size_t total = strtoull(argv[5], NULL, 10);
  if (usock_netif_configure("tap:", argv[2], NULL) != -1 || errno != EINVAL)
    fail("a bad device name is not EINVAL");
  printf("ok bad configuration: EINVAL\n");
  char netif[64];
  snprintf(netif, sizeof netif, "tap:%s", argv[1]);
  if (usock_netif_configure(netif, argv[2], NULL) != 0) fail("usock_netif_configure");
  if (usock_netif_configure(netif, argv[2], NULL) != -1 || errno != EBUSY)
    fail("a second configuration is not EBUSY");
  printf("ok configured, then EBUSY\n");

  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
  inet_pton(AF_INET, argv[3], &sa.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s < 0) fail("socket");
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != -1 || errno != EINPROGRESS)
    fail("non-blocking connect is not EINPROGRESS");
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s}, got;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0) fail("epoll_ctl");
  if (epoll_wait(ep, &got, 1, 10000) != 1) fail("no EPOLLOUT after connect");
  int err = -1;
  socklen_t el = sizeof err;
  getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err != 0) {
    errno = err;
    fail("SO_ERROR after connect");
  }
  printf("ok non-blocking connect: EINPROGRESS, EPOLLOUT, SO_ERROR 0\n");

  ev.events = EPOLLIN | EPOLLOUT;
  epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
  size_t sent = 0, rcvd = 0;
  int shut = 0;
  static unsigned char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, &got, 1, 20000);
    if (n != 1) fail("epoll_wait timed out");
    if (got.events & EPOLLIN) {
      ssize_t r = recv(s, buf, sizeof buf, 0);
      if (r == 0) break;
      if (r < 0 && errno != EAGAIN) fail("recv");
      for (ssize_t i = 0; i < r; i++)
        if (buf[i] != pat(rcvd + i)) {
          printf("FAIL echo differs at byte %zu\n", rcvd + i);
          return 1;
        }
      if (r > 0) rcvd += r;
    }
    if ((got.events & EPOLLOUT) && sent < total) {
      size_t k = total - sent < sizeof buf ? total - sent : sizeof buf;
      unsigned char out[65536];
      for (size_t i = 0; i < k; i++) out[i] = pat(sent + i);
      ssize_t w = send(s, out, k, 0);
      if (w < 0 && errno != EAGAIN) fail("send");
      if (w > 0) sent += w;
    }
    if (sent == total && !shut) {
      if (shutdown(s, SHUT_WR) != 0) fail("shutdown");
      shut = 1;
      ev.events = EPOLLIN;
      epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    }
  }
  if (rcvd != total) {
    printf("FAIL echoed %zu of %zu bytes\n", rcvd, total);
    return 1;
  }
  printf("ok %zu bytes echoed, end-of-stream after SHUT_WR\n", total);
  close(s);

  /* A connection closed with SO_LINGER 0: a reset. */
  s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) fail("blocking connect");
  if (send(s, "x", 1, 0) != 1 || recv(s, buf, 1, 0) != 1) fail("one byte echoed");
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(s);
  printf("ok closed with SO_LINGER 0\n");
  sleep(1);
  return 0;
}
