// The owner (uid) of a local TCP socket, by its exact 4-tuple, through the sock_diag netlink interface (what
// `ss -e` reads). The proxy asks it for the application end of a captured connection: one request per
// connection instead of scanning /proc.
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"

namespace vmesh {

namespace {

bool ParseAddr(const std::string& text, int family, __be32* out) {
  if (family == AF_INET) return inet_pton(AF_INET, text.c_str(), out) == 1;
  return inet_pton(AF_INET6, text.c_str(), out) == 1;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

// socketUid(family 4|6, srcAddr, srcPort, dstAddr, dstPort) -> uid, or -1 when no such socket exists.
Napi::Value SocketUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber() || !info[3].IsString() ||
      !info[4].IsNumber()) {
    Napi::TypeError::New(env, "socketUid(family, srcAddr, srcPort, dstAddr, dstPort)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  msg.req.id.idiag_sport = htons(info[2].As<Napi::Number>().Uint32Value());
  msg.req.id.idiag_dport = htons(info[4].As<Napi::Number>().Uint32Value());
  // An exact lookup (no dump): the kernel finds the one socket with this tuple.
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (!ParseAddr(info[1].As<Napi::String>().Utf8Value(), family, msg.req.id.idiag_src) ||
      !ParseAddr(info[3].As<Napi::String>().Utf8Value(), family, msg.req.id.idiag_dst)) {
    Napi::TypeError::New(env, "socketUid: address does not match the family").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  Fd nl{socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (nl.fd < 0) {
    ThrowErrno(env, "socketUid: socket(NETLINK_SOCK_DIAG)", errno);
    return env.Undefined();
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl.fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    ThrowErrno(env, "socketUid: sendto", errno);
    return env.Undefined();
  }
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = recv(nl.fd, buf, sizeof(buf), 0);
  if (n < 0) {
    ThrowErrno(env, "socketUid: recv", errno);
    return env.Undefined();
  }
  for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      if (e == ENOENT) return Napi::Number::New(env, -1);
      ThrowErrno(env, "socketUid: sock_diag", e);
      return env.Undefined();
    }
    if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      auto* d = reinterpret_cast<inet_diag_msg*>(NLMSG_DATA(h));
      return Napi::Number::New(env, d->idiag_uid);
    }
  }
  return Napi::Number::New(env, -1);
}

}  // namespace vmesh
