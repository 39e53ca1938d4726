"""What the bypass suite (tests/integration/test_bypass*.py) needs inside the testbox image.

- /usr/local/bin/enfhelper: static C helper making the system calls busybox cannot
  (bypass_helper.c, built with gcc -static once per process).
- Aliases shipped in the image, each a way to reach a protected file by another name:
  hard links (/var/backups/shadow.bak -> /etc/shadow, /usr/local/bin/ncat -> /bin/nc,
  /var/backups/id_rsa.bak -> /root/.ssh/id_rsa), symlinks to the file and to a parent
  directory (/opt/alias/...).
- /srv/secret/token: world-readable, so only the policy (not file modes) stops uid 1000.
- /srv/ro: a write-protected directory with a file, and /srv/deep for long paths.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from tests.images.testbox import RootfsBuilder
from tests.integration.helpers import build_static

HELPER_SOURCE = Path(__file__).with_name("bypass_helper.c")
HELPER = "/usr/local/bin/enfhelper"


@functools.cache
def build_helper() -> Path:
    """Compile the helper once per process (it is copied into the image tar)."""
    return build_static(HELPER_SOURCE, Path(tempfile.mkdtemp(prefix="enfhelper-")) / "enfhelper")


def add_bypass_fixtures(builder: RootfsBuilder) -> None:
    builder.add_file(HELPER, build_helper(), 0o755)
    # Hard links shipped in the image (the tar holds one inode, two names).
    builder.add_hardlink("/var/backups/shadow.bak", "/etc/shadow")
    builder.add_hardlink("/var/backups/id_rsa.bak", "/root/.ssh/id_rsa")
    builder.add_hardlink("/usr/local/bin/ncat", "/bin/nc")
    # Symlinks shipped in the image: to the file, to its directory, relative and absolute.
    builder.add_symlink("/opt/alias/shadow", "/etc/shadow")
    builder.add_symlink("/opt/alias/etc", "../../etc")
    builder.add_symlink("/opt/alias/ssh", "/root/.ssh")
    builder.add_symlink("/opt/alias/nc", "/bin/nc")
    builder.add_file("/srv/secret/token", "s3cr3t-token\n", 0o644)
    builder.add_file("/srv/ro/config", "setting=1\n", 0o666)
    builder.add_dir("/srv/ro/sub", 0o777)
    builder.add_dir("/srv/deep", 0o777)
    builder.add_dir("/srv/scratch", 0o777)
