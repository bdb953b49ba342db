//! `/login/` and `/account/`: the login form, the session cookie, the account page.

use axum::extract::{Form, Query, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::shaping::apply;
use super::{AppState, cookie_of, redirect};
use crate::faults::{Fault, Route};

pub(super) async fn login_page() -> impl IntoResponse {
    axum::response::Html(
        r#"<html><body><form method="post" action="/login/">
<input type="text" name="username"><input type="password" name="password">
<input type="hidden" name="action" value="auth"><input type="hidden" name="redirect" value="/">
</form><p>Invalid Login or Password</p></body></html>"#,
    )
}

pub(super) async fn login(
    Shared(state): Shared<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fault = state.faults.next(Route::Login);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let correct = field("username") == Some(state.config.username.as_str())
        && field("password") == Some(state.config.password.as_str())
        && field("action") == Some("auth");
    match fault {
        Some(Fault::NoCookie) if correct => return redirect(field("redirect").unwrap_or("/")),
        Some(Fault::BadPassword) => return redirect("/login/?failed=1"),
        _ if !correct => return redirect("/login/?failed=1"),
        _ => {}
    }
    let cookie = state.open_session();
    let mut response = redirect(field("redirect").unwrap_or("/"));
    let set_cookie = format!("bcfyuser1={cookie}; Path=/; HttpOnly");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set_cookie).expect("ASCII"),
    );
    response
}

pub(super) async fn account(
    Shared(state): Shared<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = apply(state.faults.next(Route::Logout).as_ref()).await {
        return response;
    }
    if query.iter().any(|(k, v)| k == "action" && v == "logout") {
        if let Some(cookie) = cookie_of(&headers) {
            state.end_session(&cookie);
        }
        let mut response = redirect("/");
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("bcfyuser1=deleted; Path=/; Max-Age=0"),
        );
        return response;
    }
    (StatusCode::OK, "account").into_response()
}
