"""What a workspace that depends on greenhub needs, offline.

In the consumer's WORKSPACE:

    local_repository(name = "greenhub", path = "third_party/greenhub")  # or http_archive
    load("@greenhub//bazel:repositories.bzl", "greenhub_dependencies")
    greenhub_dependencies()

and in its .bazelrc:  import %workspace%/third_party/greenhub/bazel/consumer.bazelrc

Debian's Bazel 4.2 wants to download rules_cc, rules_java and
remote_coverage_tools even for a plain C build. greenhub carries small
stand-ins for them (third_party/); this declares each one the consumer has
not declared itself, as a repository made of links to greenhub's copy.
"""

def _greenhub_standin_impl(rctx):
    root = rctx.path(rctx.attr._greenhub_root).dirname
    src = root.get_child("third_party").get_child(rctx.attr.dir)
    for f in src.readdir():
        rctx.symlink(f, f.basename)

_greenhub_standin = repository_rule(
    implementation = _greenhub_standin_impl,
    attrs = {
        "dir": attr.string(mandatory = True),
        "_greenhub_root": attr.label(default = Label("//:WORKSPACE")),
    },
    local = True,
)

def greenhub_dependencies():
    """Declares rules_cc, rules_java and remote_coverage_tools unless already declared."""
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(name):
            _greenhub_standin(name = name, dir = name)
