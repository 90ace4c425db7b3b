"""The process's file descriptor limit, raised for the command line."""

from __future__ import annotations

__all__ = ["raise_fd_limit"]


def raise_fd_limit() -> None:
    """Let a long-lived node hold as many sockets as the resource manager admits.

    The resource manager (``node/rcmgr``) admits 1,024 inbound connections,
    each a file descriptor, and many systems start processes with a soft
    limit of 1,024 descriptors; raise the soft limit to the hard one (as Go
    programs do at start-up) so the manager, not ``EMFILE``, decides.
    """
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass  # not on this platform, or not allowed: keep what we have
