"""Compiler options shared by every greenhub target."""

GH_COPTS = [
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-fstack-clash-protection",
    "-fno-omit-frame-pointer",
]
