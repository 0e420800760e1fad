// SO_ORIGINAL_DST: the destination a connection had before a nat REDIRECT rewrote it.
#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "addon.h"

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // linux/netfilter_ipv6/ip6_tables.h; that header drags in kernel-only types
#endif

namespace vmesh {

Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "originalDst(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();

  // The socket's own family decides which netfilter table holds the original address.
  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
    ThrowErrno(env, "originalDst: getsockname(fd " + std::to_string(fd) + ")", errno);
    return env.Undefined();
  }

  char text[INET6_ADDRSTRLEN] = {0};
  Napi::Object out = Napi::Object::New(env);
  // A dual-stack listener accepts IPv4 clients as v4-mapped IPv6 sockets; their conntrack entry is IPv4.
  bool mapped = local.ss_family == AF_INET6 &&
                IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr);
  if (local.ss_family == AF_INET || mapped) {
    sockaddr_in dst{};
    socklen_t len = sizeof(dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowErrno(env, "originalDst: getsockopt(SOL_IP, SO_ORIGINAL_DST)", errno);
      return env.Undefined();
    }
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof(text));
    out.Set("address", Napi::String::New(env, text));
    out.Set("port", Napi::Number::New(env, ntohs(dst.sin_port)));
    out.Set("family", Napi::String::New(env, "IPv4"));
    return out;
  }
  if (local.ss_family == AF_INET6) {
    sockaddr_in6 dst{};
    socklen_t len = sizeof(dst);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowErrno(env, "originalDst: getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)", errno);
      return env.Undefined();
    }
    inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof(text));
    out.Set("address", Napi::String::New(env, text));
    out.Set("port", Napi::Number::New(env, ntohs(dst.sin6_port)));
    out.Set("family", Napi::String::New(env, "IPv6"));
    return out;
  }
  ThrowErrno(env, "originalDst: fd " + std::to_string(fd) + " is not an IPv4/IPv6 socket", EAFNOSUPPORT);
  return env.Undefined();
}

}  // namespace vmesh
