#include "addon.h"

#include <cerrno>
#include <cstring>

namespace vmesh {

void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  const char* name = strerrorname_np(err);
  if (name != nullptr) e.Set("code", Napi::String::New(env, name));
  e.ThrowAsJavaScriptException();
}

}  // namespace vmesh

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New(env, vmesh::OriginalDst, "originalDst"));
  exports.Set("nftRun", Napi::Function::New(env, vmesh::NftRun, "nftRun"));
  exports.Set("socketUid", Napi::Function::New(env, vmesh::SocketUid, "socketUid"));
  exports.Set("abstractUnixConnect", Napi::Function::New(env, vmesh::AbstractUnixConnect, "abstractUnixConnect"));
  exports.Set("mallocTune", Napi::Function::New(env, vmesh::MallocTune, "mallocTune"));
  exports.Set("NftSession", vmesh::NftSessionClass(env));
  exports.Set("nftAvailable", Napi::Function::New(env, vmesh::NftAvailable, "nftAvailable"));
  return exports;
}

NODE_API_MODULE(vmesh_native, Init)
