"""Pydantic schemas of the authenticator app and recovery code operations (``api/totp.py``),
in the style of ``schemas.py``: strict bodies, documented fields, examples."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..services import recovery_codes
from .schemas import StrictBody

CODE_MAX_LENGTH = 20  # 6 digits with spaces around them, as some apps show them; no more


class TotpCode(StrictBody):
    code: str = Field(
        min_length=1,
        max_length=CODE_MAX_LENGTH,
        description="The 6 digits the authenticator app shows now (spaces are ignored).",
        examples=["492039"],
    )


class TotpEnrolmentOut(BaseModel):
    secret: str = Field(
        description="The app's secret in base32, for typing into the app when the QR code "
        "cannot be scanned. Shown only in this answer.",
        examples=["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"],
    )
    otpauth_uri: str = Field(
        description="The `otpauth://totp/...` address the QR code holds (issuer `userhub`, "
        "the account's username; 6 digits, 30 seconds, SHA-1).",
        examples=[
            "otpauth://totp/userhub:%E5%BC%A0%E4%B8%89?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
            "&issuer=userhub"
        ],
    )
    qr_svg: str = Field(
        description="The QR code of `otpauth_uri`, as an SVG document to show to the user.",
        examples=['<svg xmlns="http://www.w3.org/2000/svg" role="img" ...>...</svg>'],
    )


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(
        min_length=recovery_codes.COUNT,
        max_length=recovery_codes.COUNT,
        description="Ten single-use codes for when the authenticator app is not at hand. Shown "
        "only in this answer: userhub keeps only a keyed digest of each. Any earlier codes no "
        "longer work.",
        examples=[
            [
                "7k2mq-x9hd3",
                "c4v8n-2p6tw",
                "a0j5r-kw3ze",
                "9fh2t-m4qx8",
                "pbn6d-0s7vg",
                "x3c9e-hr5ak",
                "tz8w1-n2yqd",
                "6gm0v-jf4cs",
                "kq7p3-dx9bh",
                "e5r2y-w8tn0",
            ]
        ],
    )


class RecoveryCodesLeft(BaseModel):
    remaining: int = Field(
        ge=0,
        le=recovery_codes.COUNT,
        description="How many recovery codes are still unused (0 without an authenticator app).",
        examples=[10],
    )
