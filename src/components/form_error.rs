use crate::error::AppError;
use leptos::prelude::*;

/// The error a form's last submission ended with, next to the form.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().map(|e| {
            view! { <p class="form-error" role="alert">{e.message}</p> }
        })
    }
}
