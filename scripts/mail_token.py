"""The token of a link in the newest mail of a mail folder (``USERHUB_MAIL_URL=file:///folder``).

    python scripts/mail_token.py FOLDER PATH [--wait SECONDS]

prints ``TOKEN<tab>ADDRESS``: the ``token`` of the first link to PATH (``/email/change/confirm``,
``/email/verify``, ...) in the newest ``.eml`` file of FOLDER that has one, and the address that
mail went to. ``scripts/newman.sh`` passes them to the collection's folder *API /api/v1 — the
mailed link*, as a reader copies the link out of the mail. The mail is read as a mail program
reads it: the files are quoted-printable, where ``=3D`` stands for ``=`` and a line ending in
``=`` goes on in the next, so a link cannot be cut out of the raw text.

Waits up to SECONDS (default 10) for such a mail, since the server's sender writes it a moment
after the request that caused it; exits 1, saying so, if none comes.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

LINK = re.compile(r"https?://\S+")


def token_in(mail: EmailMessage, path: str) -> str | None:
    """The token of the first link to ``path`` in the mail's plain text, if any."""
    part = mail.get_body(preferencelist=("plain",))
    if part is None:
        return None
    for link in LINK.findall(part.get_content()):
        url = urlsplit(link)
        tokens = parse_qs(url.query).get("token")
        if url.path == path and tokens:
            return str(tokens[0])
    return None


def newest(folder: Path, path: str) -> tuple[str, str] | None:
    """(token, recipient) from the newest mail with a link to ``path``. File names start with
    the time they were written, so they sort oldest first."""
    for file in sorted(folder.glob("*.eml"), reverse=True):
        with file.open("rb") as handle:
            mail = BytesParser(policy=policy.default).parse(handle)
        assert isinstance(mail, EmailMessage)
        token = token_in(mail, path)
        if token is not None:
            return token, str(mail["To"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("path", help="the link's path, e.g. /email/change/confirm")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the mail")
    options = parser.parse_args()
    deadline = time.monotonic() + options.wait
    while (found := newest(options.folder, options.path)) is None:
        if time.monotonic() > deadline:
            print(
                f"mail_token.py: no mail with a link to {options.path} in {options.folder} "
                f"after {options.wait:g} s",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.1)
    print("\t".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
