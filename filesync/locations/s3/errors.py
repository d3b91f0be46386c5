"""``S3Error``: what an S3 server (or the way to it) answered, with its kind for the engine."""

from __future__ import annotations

from filesync.result import ErrorKind

#: Codes a 403 (or 400) carries when the credentials or their rights are the problem.
_REFUSED_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed",
    "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled",
    "AccountProblem", "InvalidSecurity", "MissingSecurityHeader", "NotSignedUp",
    "InvalidObjectState",
})
_NO_SPACE_CODES = frozenset({"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull",
                             "InsufficientStorage", "TooManyParts"})
_INVALID_CODES = frozenset({"NoSuchBucket", "PermanentRedirect", "AuthorizationHeaderMalformed",
                            "InvalidBucketName", "KeyTooLongError", "InvalidArgument",
                            "InvalidRequest", "MetadataTooLarge", "InvalidURI",
                            "IllegalLocationConstraintException", "InvalidRegion"})
_UNAVAILABLE_CODES = frozenset({"ConnectionFailed", "ServiceUnavailable", "SlowDown",
                                "RequestTimeout", "InternalError"})

#: Codes derived from a status when there is no body (HEAD answers have none).
STATUS_CODES = {301: "PermanentRedirect", 304: "NotModified", 400: "BadRequest",
                403: "AccessDenied", 404: "NotFound", 405: "MethodNotAllowed",
                409: "Conflict", 412: "PreconditionFailed", 416: "InvalidRange",
                500: "InternalError", 501: "NotImplemented", 503: "ServiceUnavailable",
                507: "InsufficientStorage"}


class S3Error(Exception):
    """An S3 request failed: the HTTP status (0: no answer), the S3 code and message."""

    def __init__(self, status: int, code: str, message: str = "", *, resource: str = "",
                 region: str = "", clock: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        #: Bucket and key the request was about (for messages).
        self.resource = resource
        #: The region the server says the bucket is in (wrong-region answers).
        self.region = region
        #: The server's and our clock when they disagree (RequestTimeTooSkewed).
        self.clock = clock
        super().__init__(self.explain())

    def __repr__(self) -> str:
        return f"S3Error(status={self.status}, code={self.code!r}, message={self.message!r})"

    @property
    def kind(self) -> ErrorKind:
        """What kind of failure this is, for the engine's decisions."""
        code = self.code
        if self.status == 0 or code in _UNAVAILABLE_CODES or self.status == 503:
            return ErrorKind.UNAVAILABLE
        if self.status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return ErrorKind.CHANGED
        if code in _INVALID_CODES:
            return ErrorKind.INVALID
        if code in _REFUSED_CODES or self.status == 403:
            return ErrorKind.REFUSED
        if code in _NO_SPACE_CODES or self.status == 507:
            return ErrorKind.NO_SPACE
        if self.status == 404 or code in ("NoSuchKey", "NoSuchUpload", "NotFound"):
            return ErrorKind.NOT_FOUND
        if self.status in (400, 411, 413, 414):
            return ErrorKind.INVALID
        return ErrorKind.FAILED

    def explain(self) -> str:
        """A sentence a user understands (never a secret)."""
        where = f" ({self.resource})" if self.resource else ""
        hint = _HINTS.get(self.code, "")
        if self.code == "RequestTimeTooSkewed":
            hint = ("this computer's clock differs from the server's by more than 15 minutes"
                    f"{f' ({self.clock})' if self.clock else ''}; set the clock (NTP) and retry")
        elif self.code in ("PermanentRedirect", "AuthorizationHeaderMalformed") and self.region:
            hint = (f"the bucket is in region {self.region}: set AWS_REGION={self.region}")
        detail = self.message or hint or "no details"
        if hint and self.message and hint not in self.message:
            detail = f"{self.message}: {hint}"
        status = f"HTTP {self.status} " if self.status else ""
        return f"S3 {status}{self.code}{where}: {detail}"


_HINTS = {
    "InvalidAccessKeyId": "the access key is not known to the server; check AWS_ACCESS_KEY_ID "
                          "or the profile's aws_access_key_id",
    "SignatureDoesNotMatch": "the secret key does not match the access key; check "
                             "AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key",
    "AccessDenied": "these credentials are not allowed to do this",
    "NoSuchBucket": "the bucket does not exist (filesync never creates one); create it or "
                    "fix the name",
    "NoSuchKey": "no such object",
    "PreconditionFailed": "the object changed since it was last looked at",
    "ConditionalRequestConflict": "another writer changed the object at the same time",
    "ConnectionFailed": "the server cannot be reached; check the endpoint and the network",
    "SlowDown": "the server asks to slow down; try again later",
    "ServiceUnavailable": "the server is unavailable now; try again later",
    "ExpiredToken": "the session token has expired; renew the temporary credentials",
    "InvalidToken": "the session token is not valid; check AWS_SESSION_TOKEN",
    "EntityTooLarge": "the object is larger than the server accepts",
    "QuotaExceeded": "the storage quota is exhausted",
}
