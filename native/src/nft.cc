// libnftables through dlopen: the library is found at run time, so building needs no -dev package,
// and a host without it gets an error naming the package rather than a failed addon load.
#include <dlfcn.h>

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

}  // namespace

Napi::Value NftAvailable(const Napi::CallbackInfo& info) {
  std::call_once(load_once, Load);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", Napi::Boolean::New(info.Env(), load_error.empty()));
  if (!load_error.empty()) out.Set("error", Napi::String::New(info.Env(), load_error));
  return out;
}

// nftRun(batch, { json }) runs one buffer as one transaction and returns libnftables' output.
Napi::Value NftRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "nftRun(batch, options): batch must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool json = false;
  if (info.Length() >= 2 && info[1].IsObject()) {
    Napi::Value j = info[1].As<Napi::Object>().Get("json");
    json = j.IsBoolean() && j.As<Napi::Boolean>().Value();
  }
  if (!Ensure(env)) return env.Undefined();
  std::string batch = info[0].As<Napi::String>().Utf8Value();

  void* ctx = api.ctx_new(0);
  if (ctx == nullptr) {
    Napi::Error::New(env, "nft_ctx_new failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  api.buffer_output(ctx);
  api.buffer_error(ctx);
  api.output_set_flags(ctx, json ? (kNftOutputJson | kNftOutputHandle) : kNftOutputHandle);
  int rc = api.run_cmd_from_buffer(ctx, batch.c_str());
  // Each getter hands over the buffer and resets it, so it is read exactly once.
  const char* out_buf = api.get_output_buffer(ctx);
  const char* err_buf = api.get_error_buffer(ctx);
  std::string out = out_buf != nullptr ? out_buf : "";
  std::string err = err_buf != nullptr ? err_buf : "";
  api.ctx_free(ctx);

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

}  // namespace vmesh
