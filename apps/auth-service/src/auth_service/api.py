"""user-auth's HTTP API (the auth section of API.md)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, unquote

from sanic import Blueprint, HTTPResponse, Request, json
from shopflow_kit import Problem, json_body, require_scope, require_user
from shopflow_kit.http import client_address
from shopflow_kit.openapi import Link, operation

from auth_service import service
from auth_service.models import User
from auth_service.schemas import (
    ClientCredentialsForm,
    JWKSOut,
    LoginIn,
    MeOut,
    OpenIDConfigurationOut,
    RefreshIn,
    RegisterIn,
    ServiceTokenOut,
    TokenPairOut,
    UserOut,
)

bp = Blueprint("auth", url_prefix="/auth")
internal = Blueprint("auth_internal", url_prefix="/internal")

#: The shopper's own token, from a login's answer, on the operation a link leads to.
_BEARER = {"header.Authorization": "Bearer {$response.body#/access_token}"}
_REFRESH = {"refresh_token": "$response.body#/refresh_token"}


def _pair(pair: service.TokenPair) -> HTTPResponse:
    body = TokenPairOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )
    return json(body.model_dump(), headers={"Cache-Control": "no-store"})


@bp.post("/register")
@operation(
    "Register a customer account",
    responses={201: UserOut},
    problems=[409],
    links={
        201: {
            "Login": Link(
                "login",
                request_body={
                    "email": "$request.body#/email",
                    "password": "$request.body#/password",
                },
            )
        }
    },
)
@json_body(RegisterIn)
async def register(request: Request, body: RegisterIn) -> HTTPResponse:
    user = await service.register(str(body.email), body.password, body.name)
    out = UserOut(
        id=user.id, email=user.email, name=user.name, role=user.role, created_at=user.created_at
    )
    return json(out.model_dump(mode="json"), status=201)


@bp.post("/login")
@operation(
    "Log in",
    responses={200: TokenPairOut},
    problems=[401, 429],
    links={
        200: {
            "Me": Link("me", parameters=_BEARER),
            "Refresh": Link("refresh", request_body=_REFRESH),
            "Logout": Link("logout", request_body=_REFRESH),
            "AddToCart": Link(
                service="order-mgmt",
                method="PUT",
                path="/cart/items/{product_id}",
                parameters=_BEARER,
            ),
            "Notifications": Link(
                service="notify-hub", method="GET", path="/notifications", parameters=_BEARER
            ),
        }
    },
)
@json_body(LoginIn)
async def login(request: Request, body: LoginIn) -> HTTPResponse:
    pair = await service.login(
        request.app.ctx.minter, body.email, body.password, client_address(request)
    )
    return _pair(pair)


@bp.post("/refresh")
@operation("Exchange a refresh token for a new pair", responses={200: TokenPairOut}, problems=[401])
@json_body(RefreshIn)
async def refresh(request: Request, body: RefreshIn) -> HTTPResponse:
    return _pair(await service.refresh(request.app.ctx.minter, body.refresh_token))


@bp.post("/logout")
@operation("Log out: revoke the refresh token", responses={204: None}, problems=[401])
@json_body(RefreshIn)
async def logout(request: Request, body: RefreshIn) -> HTTPResponse:
    await service.logout(body.refresh_token)
    return HTTPResponse(status=204)


@bp.get("/me")
@operation("The signed-in account", responses={200: MeOut})
@require_user
async def me(request: Request) -> HTTPResponse:
    user = await User.get_or_none(id=request.ctx.principal.subject)
    if user is None:
        raise Problem(401, "the account no longer exists")
    return json(
        MeOut(id=user.id, email=user.email, name=user.name, role=user.role).model_dump(mode="json")
    )


@bp.get("/.well-known/jwks.json")
@operation("Public signing keys (JWKS)", responses={200: JWKSOut})
async def jwks(request: Request) -> HTTPResponse:
    keys = await request.app.ctx.keys.published()
    return json({"keys": keys}, headers={"Cache-Control": "public, max-age=300"})


@bp.get("/.well-known/openid-configuration")
@operation("OIDC discovery", responses={200: OpenIDConfigurationOut})
async def openid_configuration(request: Request) -> HTTPResponse:
    issuer = request.app.ctx.settings.jwt_issuer.rstrip("/")
    return json(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "token_endpoint": f"{issuer}/oauth/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "scopes_supported": sorted(
                {
                    s
                    for scopes in request.app.ctx.settings.oauth_client_scopes.values()
                    for s in scopes
                }
            ),
        },
        headers={"Cache-Control": "public, max-age=300"},
    )


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except ValueError:  # bad base64, non-ASCII header bytes, or not UTF-8
            raise service.oauth_error(
                401, "invalid_client", "malformed Basic credentials"
            ) from None
        client_id, sep, secret = decoded.partition(":")
        if sep:
            return unquote(client_id), unquote(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise service.oauth_error(
        401,
        "invalid_client",
        "client authentication is required",
        **{"WWW-Authenticate": 'Basic realm="shopflow"'},
    )


@bp.post("/oauth/token")
@operation(
    "A service token (OAuth2 client credentials)",
    responses={200: ServiceTokenOut},
    problems=[400, 401],
    form=ClientCredentialsForm,
)
async def token(request: Request) -> HTTPResponse:
    """OAuth2 client credentials (RFC 6749 section 4.4); the body is form-encoded."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise service.oauth_error(400, "invalid_request", "the body must be form-encoded")
    try:
        parsed = parse_qs(request.body.decode(), strict_parsing=False)
    except UnicodeDecodeError:
        raise service.oauth_error(400, "invalid_request", "the body is not UTF-8") from None
    form: dict[str, Any] = {k: v[0] for k, v in parsed.items()}
    if form.get("grant_type") != "client_credentials":
        raise service.oauth_error(
            400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    client_id, secret = _client_auth(request, form)
    access_token, scopes = await service.client_credentials(
        request.app.ctx.minter, client_id, secret, form.get("scope")
    )
    body = ServiceTokenOut(
        access_token=access_token, expires_in=request.app.ctx.minter.ttl, scope=" ".join(scopes)
    )
    return json(body.model_dump(), headers={"Cache-Control": "no-store"})


# --- internal: notify-hub's service token with users:read ------------------------------


@internal.get("/users/<user_id:str>")
@require_scope("users:read")
async def internal_user(request: Request, user_id: str) -> HTTPResponse:
    user = await service.find_user(user_id)
    return json(
        MeOut(id=user.id, email=user.email, name=user.name, role=user.role).model_dump(mode="json")
    )
