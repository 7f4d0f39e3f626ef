//! The four RBAC kinds (`rbac.authorization.k8s.io/v1`): names are path
//! segments (`system:node:n1`); roles print their creation time, bindings
//! their role and subjects. One file for the four, as they share every rule.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, NAME_CREATED_AT, age, col, created_at_row, list_at, name, str_at, wide};

/// Roles.
pub static ROLE: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::rbac::v1::Role>(),
    ops: KindOps {
        name_rule: NameRule::PathSegment,
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
        patch: Some(&schema::RBAC_V1_ROLE),
    },
};

/// ClusterRoles.
pub static CLUSTER_ROLE: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::rbac::v1::ClusterRole>(),
    ops: KindOps {
        name_rule: NameRule::PathSegment,
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
        patch: Some(&schema::RBAC_V1_CLUSTER_ROLE),
    },
};

/// RoleBindings.
pub static ROLE_BINDING: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::rbac::v1::RoleBinding>(),
    ops: KindOps {
        name_rule: NameRule::PathSegment,
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
            columns: BINDING_COLUMNS,
            row: binding_row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::RBAC_V1_ROLE_BINDING),
    },
};

/// ClusterRoleBindings.
pub static CLUSTER_ROLE_BINDING: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(),
    ops: KindOps {
        name_rule: NameRule::PathSegment,
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
            columns: BINDING_COLUMNS,
            row: binding_row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::RBAC_V1_CLUSTER_ROLE_BINDING),
    },
};

const BINDING_COLUMNS: &[Column] = &[
    NAME,
    col("Role", "string", "The role bound."),
    AGE,
    wide("Users", "string", "Users bound."),
    wide("Groups", "string", "Groups bound."),
    wide("ServiceAccounts", "string", "Service accounts bound."),
];

fn binding_row(obj: &Value, now: i128) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]).unwrap_or(""),
        str_at(obj, &["roleRef", "name"]).unwrap_or("")
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list_at(obj, &["subjects"]) {
        let name = str_at(subject, &["name"]).unwrap_or("");
        match str_at(subject, &["kind"]) {
            Some("User") => users.push(name.to_owned()),
            Some("Group") => groups.push(name.to_owned()),
            Some("ServiceAccount") => {
                accounts.push(format!("{}/{name}", str_at(subject, &["namespace"]).unwrap_or("")))
            }
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(role),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
