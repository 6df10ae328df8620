{
  "targets": [
    {
      "target_name": "understudy_native",
      "sources": [
        "native/src/addon.c",
        "native/src/pages.c",
        "native/src/crc32c.c",
        "native/src/uffd.c",
        "native/src/delta.c",
        "native/src/exclude.c",
        "native/src/balloon.c",
        "native/src/copier.c",
        "native/src/deadline.c"
      ],
      "cflags_c": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-D_GNU_SOURCE"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_c": ["-msse4.2"] }]
      ]
    }
  ]
}
