// libnftables through dlopen: the library is found at run time, so building needs no -dev package,
// and a host without it gets an error naming the package rather than a failed addon load.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "addon.h"

namespace vmesh {
namespace {

constexpr unsigned kNftOutputJson = 1u << 4;
constexpr unsigned kNftOutputHandle = 1u << 3;

struct NftApi {
  void* (*ctx_new)(unsigned);
  void (*ctx_free)(void*);
  int (*buffer_output)(void*);
  int (*buffer_error)(void*);
  const char* (*get_output_buffer)(void*);
  const char* (*get_error_buffer)(void*);
  void (*output_set_flags)(void*, unsigned);
  int (*run_cmd_from_buffer)(void*, const char*);
};

std::once_flag load_once;
NftApi api{};
std::string load_error;

void Load() {
  void* lib = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    load_error = std::string("libnftables.so.1 could not be loaded (") + dlerror() +
                 "): install the Debian package libnftables1 (apt-get install libnftables1)";
    return;
  }
  auto sym = [&](const char* name) -> void* {
    void* p = dlsym(lib, name);
    if (p == nullptr && load_error.empty()) load_error = std::string("libnftables.so.1 lacks symbol ") + name;
    return p;
  };
  api.ctx_new = reinterpret_cast<decltype(api.ctx_new)>(sym("nft_ctx_new"));
  api.ctx_free = reinterpret_cast<decltype(api.ctx_free)>(sym("nft_ctx_free"));
  api.buffer_output = reinterpret_cast<decltype(api.buffer_output)>(sym("nft_ctx_buffer_output"));
  api.buffer_error = reinterpret_cast<decltype(api.buffer_error)>(sym("nft_ctx_buffer_error"));
  api.get_output_buffer = reinterpret_cast<decltype(api.get_output_buffer)>(sym("nft_ctx_get_output_buffer"));
  api.get_error_buffer = reinterpret_cast<decltype(api.get_error_buffer)>(sym("nft_ctx_get_error_buffer"));
  api.output_set_flags = reinterpret_cast<decltype(api.output_set_flags)>(sym("nft_ctx_output_set_flags"));
  api.run_cmd_from_buffer = reinterpret_cast<decltype(api.run_cmd_from_buffer)>(sym("nft_run_cmd_from_buffer"));
}

bool Ensure(Napi::Env env) {
  std::call_once(load_once, Load);
  if (!load_error.empty()) {
    Napi::Error e = Napi::Error::New(env, load_error);
    e.Set("code", Napi::String::New(env, "VMESH_ERR_NFT_UNAVAILABLE"));
    e.ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// libnftables opens its netfilter netlink socket without close-on-exec. A table with the `owner` flag lives
// as long as that socket, so a copy inherited by a child (the proxy workers are forked and exec'ed) would
// keep the table after the owner died: mark every netfilter netlink socket of this process close-on-exec.
void CloseOnExecNetfilterSockets() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  int self = dirfd(dir);
  while (dirent* d = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(d->d_name, &end, 10);
    if (end == d->d_name || *end != '\0' || fd == self) continue;
    int domain = 0;
    int protocol = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK) continue;
    len = sizeof(protocol);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != NETLINK_NETFILTER) continue;
    int flags = fcntl(static_cast<int>(fd), F_GETFD);
    if (flags >= 0) fcntl(static_cast<int>(fd), F_SETFD, flags | FD_CLOEXEC);
  }
  closedir(dir);
}

void* NewContext(Napi::Env env) {
  void* ctx = api.ctx_new(0);
  if (ctx == nullptr) {
    Napi::Error::New(env, "nft_ctx_new failed").ThrowAsJavaScriptException();
    return nullptr;
  }
  CloseOnExecNetfilterSockets();
  api.buffer_output(ctx);
  api.buffer_error(ctx);
  return ctx;
}

bool ParseArgs(const Napi::CallbackInfo& info, const char* what, std::string* batch, bool* json) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, std::string(what) + "(batch, options): batch must be a string").ThrowAsJavaScriptException();
    return false;
  }
  *json = false;
  if (info.Length() >= 2 && info[1].IsObject()) {
    Napi::Value j = info[1].As<Napi::Object>().Get("json");
    *json = j.IsBoolean() && j.As<Napi::Boolean>().Value();
  }
  *batch = info[0].As<Napi::String>().Utf8Value();
  return true;
}

// Runs one buffer as one transaction on `ctx` and returns libnftables' output (or throws its errors).
Napi::Value RunOn(Napi::Env env, void* ctx, const std::string& batch, bool json) {
  api.output_set_flags(ctx, json ? (kNftOutputJson | kNftOutputHandle) : kNftOutputHandle);
  int rc = api.run_cmd_from_buffer(ctx, batch.c_str());
  // Each getter hands over the buffer and resets it, so it is read exactly once.
  const char* out_buf = api.get_output_buffer(ctx);
  const char* err_buf = api.get_error_buffer(ctx);
  std::string out = out_buf != nullptr ? out_buf : "";
  std::string err = err_buf != nullptr ? err_buf : "";
  if (rc != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    Napi::Error e = Napi::Error::New(env, err.empty() ? "nft: command failed (rc " + std::to_string(rc) + ")" : err);
    e.Set("code", Napi::String::New(env, "VMESH_ERR_NFT"));
    e.Set("nftError", Napi::String::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::String::New(env, out);
}

}  // namespace

Napi::Value NftAvailable(const Napi::CallbackInfo& info) {
  std::call_once(load_once, Load);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", Napi::Boolean::New(info.Env(), load_error.empty()));
  if (!load_error.empty()) out.Set("error", Napi::String::New(info.Env(), load_error));
  return out;
}

// nftRun(batch, { json }) runs one buffer as one transaction on a context of its own, closed at once.
Napi::Value NftRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string batch;
  bool json = false;
  if (!ParseArgs(info, "nftRun", &batch, &json) || !Ensure(env)) return env.Undefined();
  void* ctx = NewContext(env);
  if (ctx == nullptr) return env.Undefined();
  Napi::Value result = RunOn(env, ctx, batch, json);
  api.ctx_free(ctx);
  return result;
}

// One libnftables context kept open: every transaction goes through the same netlink socket, which is what
// owns a table created with `flags owner`; the kernel deletes that table when the socket closes (close(),
// or the process dying by any cause).
class NftSession : public Napi::ObjectWrap<NftSession> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NftSession",
                       {InstanceMethod("run", &NftSession::Run), InstanceMethod("close", &NftSession::Close)});
  }

  explicit NftSession(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NftSession>(info) {
    if (!Ensure(info.Env())) return;
    ctx_ = NewContext(info.Env());
  }

  ~NftSession() override { Free(); }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string batch;
    bool json = false;
    if (!ParseArgs(info, "run", &batch, &json)) return env.Undefined();
    if (ctx_ == nullptr) {
      Napi::Error e = Napi::Error::New(env, "nftables session is closed");
      e.Set("code", Napi::String::New(env, "VMESH_ERR_NFT"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return RunOn(env, ctx_, batch, json);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  void Free() {
    if (ctx_ != nullptr) api.ctx_free(ctx_);
    ctx_ = nullptr;
  }

  void* ctx_ = nullptr;
};

Napi::Function NftSessionClass(Napi::Env env) { return NftSession::Define(env); }

}  // namespace vmesh
