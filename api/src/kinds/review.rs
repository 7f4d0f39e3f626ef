//! The review kinds, which are never stored: a client creates one to ask a
//! question and gets it back with the answer in `status` (the server's
//! `reviews` module answers). `authentication.k8s.io/v1`: TokenReview and
//! SelfSubjectReview; `authorization.k8s.io/v1`: SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectAccessReview and
//! SelfSubjectRulesReview.

use serde_json::Value;

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema::{self, TypeInfo};
use crate::printer::{NAME_CREATED_AT, created_at_row};

/// A review kind: nothing to default, validate or keep.
const fn review(typed: Typed, patch: &'static TypeInfo) -> BuiltinKind {
    BuiltinKind {
        typed,
        ops: KindOps {
            name_rule: NameRule::Dns1123Subdomain,
            create_keeps_status: false,
            prepare_for_create: super::nothing_on_create,
            prepare_for_update: super::nothing_on_update,
            defaults: super::no_defaults,
            validate: super::no_validation,
            deletion_grace: super::no_deletion_grace,
            spec_finalizers: false,
            delete_returns_object: false,
            unnamed_propagation: super::Unnamed::Background,
            printer: Printer {
                columns: NAME_CREATED_AT,
                row: created_at_row,
                conditions: super::no_row_conditions,
            },
            field_label,
            patch: Some(patch),
        },
    }
}

pub static TOKEN_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authentication::v1::TokenReview>(),
    &schema::AUTHENTICATION_V1_TOKEN_REVIEW,
);

pub static SELF_SUBJECT_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authentication::v1::SelfSubjectReview>(),
    &schema::AUTHENTICATION_V1_SELF_SUBJECT_REVIEW,
);

pub static SUBJECT_ACCESS_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authorization::v1::SubjectAccessReview>(),
    &schema::AUTHORIZATION_V1_SUBJECT_ACCESS_REVIEW,
);

pub static LOCAL_SUBJECT_ACCESS_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authorization::v1::LocalSubjectAccessReview>(),
    &schema::AUTHORIZATION_V1_LOCAL_SUBJECT_ACCESS_REVIEW,
);

pub static SELF_SUBJECT_ACCESS_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>(),
    &schema::AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW,
);

pub static SELF_SUBJECT_RULES_REVIEW: BuiltinKind = review(
    Typed::of::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>(),
    &schema::AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW,
);

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
