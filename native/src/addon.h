// Shared declarations for the vmesh native addon.
#pragma once
#include <napi.h>
#include <string>

namespace vmesh {

// Throws a JS Error whose message names the failing call and carries errno/code.
void ThrowErrno(Napi::Env env, const std::string& what, int err);

Napi::Value OriginalDst(const Napi::CallbackInfo& info);
Napi::Value NftRun(const Napi::CallbackInfo& info);
Napi::Value NftAvailable(const Napi::CallbackInfo& info);
// The constructor of NftSession: one libnftables context (one netlink socket) kept open until close().
Napi::Function NftSessionClass(Napi::Env env);
Napi::Value SocketUid(const Napi::CallbackInfo& info);
Napi::Value AbstractUnixConnect(const Napi::CallbackInfo& info);
Napi::Value MallocTune(const Napi::CallbackInfo& info);

}  // namespace vmesh
