// A stream socket connected to a name in Linux's abstract unix namespace, addressed with the name's exact length.
// Node's net.connect (libuv 1.46) passes the whole 108-byte sun_path for a path starting with NUL, so it reaches
// only names bound the same padded way (by Node itself); Envoy, Go, systemd, socat and curl bind and connect with
// the exact length, and so must the proxy for Istio's `unix://@name` endpoints.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "addon.h"

namespace vmesh {

// abstractUnixConnect(name) -> fd of a connected, non-blocking, close-on-exec socket. `name` is without the leading
// NUL (Envoy's `@name` minus the `@`). A listener whose backlog is full fails with EAGAIN, as unix sockets do.
Napi::Value AbstractUnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "abstractUnixConnect(name)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  if (name.empty() || name.size() > sizeof(addr.sun_path) - 1) {
    Napi::RangeError::New(env, "abstractUnixConnect: the name must be 1-107 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, "socket(AF_UNIX)", errno);
    return env.Undefined();
  }
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "connect(@" + name + ")", err);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

}  // namespace vmesh
