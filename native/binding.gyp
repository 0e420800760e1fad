{
  "targets": [
    {
      "target_name": "vmesh_native",
      "sources": ["src/addon.cc", "src/original-dst.cc", "src/nft.cc", "src/socket-uid.cc", "src/abstract-unix.cc", "src/malloc-tune.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "libraries": ["-ldl"]
    }
  ]
}
