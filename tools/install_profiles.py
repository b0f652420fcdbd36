#!/usr/bin/env python3
"""Link this project's Snakemake profiles where Snakemake looks for profile names.

``snakemake --profile slurm`` (a bare name) is looked up in the current
directory, then in Snakemake's user config folder (``$XDG_CONFIG_HOME/snakemake``,
usually ``~/.config/snakemake``), then in the site folder
(``/etc/xdg/snakemake``). ``make setup`` runs this script, which links
``<user config>/snakemake/{slurm,local}`` to ``profiles/{slurm,local}`` of this
checkout, so the command works as typed from the project root.

A profile of the same name that is not ours is never replaced: the script
says so and leaves it (``snakemake --profile profiles/slurm`` always names
this project's). A link to another checkout of this project is moved to
this checkout only with ``--force`` (it says so either way).

Exit status 0 in every case above (setup goes on); 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("slurm", "local")


def user_profile_dir():
    """Snakemake's user config folder, as Snakemake itself computes it."""
    try:
        from snakemake.common import get_appdirs

        return Path(get_appdirs().user_config_dir)
    except ImportError:  # Snakemake not importable: its platformdirs rule on Linux
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "snakemake"


def _ours(path):
    """True if ``path`` is a link to a ``profiles/<name>`` of a checkout of this project."""
    if not path.is_symlink():
        return False
    target = Path(os.path.realpath(path))
    return target.parent.name == "profiles" and (target.parent.parent / "workflow" / "rules").is_dir()


def install(names=PROFILES, dest=None, force=False, out=sys.stdout):
    dest = Path(dest) if dest else user_profile_dir()
    dest.mkdir(parents=True, exist_ok=True)
    status = {}
    for name in names:
        src = ROOT / "profiles" / name
        link = dest / name
        if link.is_symlink() and Path(os.path.realpath(link)) == src.resolve():
            status[name] = "present"
            print(f"profile {name}: {link} -> {src} (already linked)", file=out)
        elif link.is_symlink() and _ours(link) and force:
            old = os.readlink(link)
            link.unlink()
            link.symlink_to(src, target_is_directory=True)
            status[name] = "relinked"
            print(f"profile {name}: {link} pointed to {old}; now -> {src} (--force)", file=out)
        elif link.exists() or link.is_symlink():
            status[name] = "kept"
            what = f"a link to {os.readlink(link)}" if link.is_symlink() else "your own profile"
            print(f"profile {name}: NOT linked: {link} is {what}, left as it is. `snakemake --profile {name}` "
                  f"uses it; use `--profile profiles/{name}` for this project's"
                  + (" (or rerun with --force to link this checkout)" if _ours(link) else ""), file=out)
        else:
            link.symlink_to(src, target_is_directory=True)
            status[name] = "linked"
            print(f"profile {name}: linked {link} -> {src}", file=out)
    return status


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"profiles to link (default: {', '.join(PROFILES)})")
    p.add_argument("--dest", help="folder to link into (default: Snakemake's user config folder)")
    p.add_argument("--force", action="store_true", help="move a link to another checkout of this project here")
    a = p.parse_args(argv)
    bad = [n for n in a.names if n not in PROFILES]
    if bad:
        p.error(f"unknown profiles {bad}; this project has {list(PROFILES)}")
    install(a.names or PROFILES, a.dest, a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
