/* tests/engine/netif_dhcp.c: a program linked with the library that gives
 * the engine its own Ethernet device (usock_netif_attach: a C device table
 * over a TAP device, as an RTOS host would over its driver) with the
 * address "dhcp", on one thread: nothing runs the engine but the library.
 *
 *   netif_dhcp TAP ROUTER SERVER PORT
 *
 * First a UDP socket connect()s to ROUTER:9 before any lease: the connect
 * waits for the lease, running the engine itself meanwhile, and then
 * getsockname gives the leased address (printed "address A"). Then a
 * thread of its own calls usock_netif_poll, and a TCP connection to SERVER
 * (off the link: through the lease's default route) sends an HTTP/1.0
 * request and reads the answer's status line. Prints "ok ..." lines, or
 * "FAIL ..." and exits 1. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "userspacesock.h"

static int tap = -1;

static void fail(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  exit(1);
}

static int dev_send(void *ctx, const uint8_t *frame, size_t len) {
  (void)ctx;
  return write(tap, frame, len) == (ssize_t)len ? 0 : -1;
}
static size_t dev_recv(void *ctx, uint8_t *buf, size_t cap) {
  (void)ctx;
  ssize_t n = read(tap, buf, cap);
  return n > 0 ? (size_t)n : 0;
}
static uint32_t dev_mtu(void *ctx) {
  (void)ctx;
  return 1500;
}
static void dev_mac(void *ctx, uint8_t *mac) {
  (void)ctx;
  static const uint8_t m[6] = {0x02, 0x79, 0x00, 0x00, 0x00, 0x42};
  memcpy(mac, m, 6);
}

/* The host's network task: runs the engine when a frame comes or its
 * timer is due. */
static void *net_task(void *arg) {
  (void)arg;
  for (;;) {
    int ms = usock_netif_poll();
    struct pollfd p = {.fd = tap, .events = POLLIN};
    poll(&p, 1, ms < 0 || ms > 20 ? 20 : ms);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s TAP ROUTER SERVER PORT\n", argv[0]);
    return 2;
  }
  tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (tap < 0) fail("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[1]);
  if (ioctl(tap, TUNSETIFF, &ifr) != 0) fail("TUNSETIFF");
  /* This driver reads frames without a virtio_net_hdr: no offloads (the
   * engine of an earlier test left its own on the device). */
  if (ioctl(tap, TUNSETOFFLOAD, 0) != 0) fail("TUNSETOFFLOAD");

  struct usock_netif_ops ops = {
      .abi_version = USOCK_NETIF_ABI_VERSION,
      .send = dev_send,
      .recv = dev_recv,
      .mtu = dev_mtu,
      .mac = dev_mac,
  };
  struct usock_netif_config cfg = {.addrs = "dhcp,10.0.0.1/24"};
  if (usock_netif_attach(&ops, &cfg) != -1 || errno != EINVAL)
    fail("a static IPv4 address beside dhcp is not EINVAL");
  cfg.addrs = "dhcp";
  if (usock_netif_attach(&ops, &cfg) != 0) fail("usock_netif_attach(dhcp)");
  printf("ok attached with dhcp\n");

  /* Not port 53: the default routing rule keeps DNS on the kernel. */
  struct sockaddr_in r = {.sin_family = AF_INET, .sin_port = htons(9)};
  inet_pton(AF_INET, argv[2], &r.sin_addr);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  if (u < 0) fail("socket(udp)");
  if (connect(u, (struct sockaddr *)&r, sizeof r) != 0) fail("udp connect while the lease comes");
  struct sockaddr_in me;
  socklen_t ml = sizeof me;
  if (getsockname(u, (struct sockaddr *)&me, &ml) != 0) fail("getsockname");
  char a[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &me.sin_addr, a, sizeof a);
  if (me.sin_addr.s_addr == htonl(INADDR_ANY) || me.sin_port == 0) {
    errno = 0;
    printf("address %s\n", a);
    fail("getsockname after the connect is not the lease's address");
  }
  printf("address %s\n", a);
  printf("ok udp connect waited for the lease, one thread\n");

  pthread_t t;
  if (pthread_create(&t, NULL, net_task, NULL) != 0) fail("pthread_create");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
  inet_pton(AF_INET, argv[3], &sa.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) fail("socket(tcp)");
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) fail("tcp connect through the lease's router");
  const char req[] = "GET / HTTP/1.0\r\n\r\n";
  if (write(s, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) fail("write");
  char buf[64];
  size_t got = 0;
  while (got < 12) {
    ssize_t n = read(s, buf + got, sizeof buf - 1 - got);
    if (n <= 0) fail("read the status line");
    got += (size_t)n;
  }
  buf[got] = 0;
  if (strncmp(buf, "HTTP/1.0 200", 12) != 0) {
    errno = 0;
    fail("the answer is not HTTP/1.0 200");
  }
  printf("ok tcp through the lease's default route: HTTP/1.0 200\n");
  close(s);
  close(u);
  return 0;
}
