//! The generic registry: Kubernetes object semantics on the store's
//! transactions, the way kube-apiserver builds them on etcd.
//!
//! * Keys: `/registry/<group or "core">/<resource>/<namespace>/<name>`, or
//!   without the namespace for cluster-scoped kinds.
//! * Values: the object's JSON without `metadata.resourceVersion`; the
//!   resourceVersion a client sees is the key's `mod_revision`.
//! * Create: a transaction on "key absent". Update: on "mod_revision
//!   unchanged" (optimistic concurrency), retried on conflict only when the
//!   client did not name a resourceVersion (patches, unconditional updates).
//! * Delete: immediate, or a mark (`deletionTimestamp`) while finalizers
//!   remain; the update that removes the last finalizer deletes the key.
//!
//! Per-kind rules (defaults, validation, what a status update may touch)
//! live in [`crate::strategy`]; the registry calls them at the fixed points
//! Kubernetes does.

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_store::{Compare, CompareOp, KeyRange, RangeRequest, ReadConsistency, Store, Txn, TxnOp};

use crate::admission::{Admission, Attributes, Operation};
use crate::catalog::{Catalog, Resource};
use crate::crd;
use crate::error::{ApiError, Cause, Result, Subject};
use crate::meta;
use crate::options::{DeleteOptions, FieldValidation, ListOptions, Part, WriteOptions};
use crate::services::{self, Reservations, ServiceRanges};
use crate::stored::{decode, encode, key, prefix};
use crate::strategy;

/// How many times a retryable update is re-read and re-applied before the
/// conflict is reported.
const MAX_UPDATE_ATTEMPTS: usize = 8;
/// How many generated names are tried before giving up.
const MAX_GENERATE_NAME_ATTEMPTS: usize = 8;
/// The keys read per store round trip while filtering a list.
const LIST_CHUNK: usize = 500;

/// What a delete did.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The key is gone; the object as it was.
    Gone(Value),
    /// Finalizers or a grace period keep it; the object now carries a
    /// `deletionTimestamp`.
    Marked(Value),
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// An object as stored, with its resourceVersion.
#[derive(Clone, Debug)]
pub struct Current {
    pub object: Value,
    pub mod_revision: u64,
}

/// Kubernetes semantics over the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Registry {
    store: Store,
    catalog: Catalog,
    admission: Admission,
    decoded: Arc<crate::stored::DecodeCache>,
    service_ranges: ServiceRanges,
    /// The cluster CA (PEM) a new namespace's `kube-root-ca.crt` holds.
    root_ca: Option<Arc<str>>,
}

/// Whether `resource` is the core (`v1`) resource `plural`.
fn is_core(resource: &Resource, plural: &str) -> bool {
    resource.group.is_empty() && resource.plural == plural
}

fn subject(resource: &Resource, name: &str) -> Subject {
    Subject::new(&resource.group, &resource.plural, name)
}

fn parse_revision(rv: &str) -> Result<u64> {
    rv.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
}

/// Gives a writer that is not applying ownership of the fields it changed,
/// in `metadata.managedFields`, as Kubernetes records Update operations.
fn record_ownership(resource: &Resource, part: Part, old: Option<&Value>, new: &mut Value, options: &WriteOptions) {
    use crate::patch::apply::{Scope, record_update};
    let Some(manager) = options.field_manager.as_deref().filter(|_| !options.applying) else {
        return;
    };
    let scope = match part {
        Part::Status => Scope::Status,
        _ if resource.has_status() => Scope::Main,
        _ => Scope::Object,
    };
    let root = resource.ops.patch;
    record_update(old, new, manager, &meta::now_rfc3339(), scope, root);
}

/// A `continue` token: the revision of the first page and the key after
/// the last one returned, relative to the list prefix.
fn encode_continue(revision: u64, start: &str) -> String {
    use base64::Engine;
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String)> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion".into());
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let revision = value["rv"].as_u64().filter(|rv| *rv > 0).ok_or_else(bad)?;
    let start = value["start"].as_str().ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((revision, start.to_string()))
}

impl Registry {
    pub fn new(store: Store, catalog: Catalog) -> Registry {
        Registry {
            store,
            catalog,
            admission: Admission::new(),
            decoded: Arc::default(),
            service_ranges: ServiceRanges::default(),
            root_ca: None,
        }
    }

    /// The cluster CA (PEM) that every new namespace gets in its
    /// `kube-root-ca.crt` ConfigMap, for in-cluster clients to verify the
    /// API server.
    pub fn with_root_ca(mut self, pem: &str) -> Registry {
        self.root_ca = Some(pem.into());
        self
    }

    /// Where Services get their ClusterIPs and node ports.
    pub fn with_service_ranges(mut self, ranges: ServiceRanges) -> Registry {
        self.service_ranges = ranges;
        self
    }

    pub fn service_ranges(&self) -> &ServiceRanges {
        &self.service_ranges
    }

    /// The reservations (Service addresses) a write of `new` over `old`
    /// takes and frees.
    async fn reservations(
        &self,
        resource: &Resource,
        old: Option<&Value>,
        new: Option<&mut Value>,
    ) -> Result<Reservations> {
        services::reserve(
            &self.service_ranges,
            &self.store,
            (&resource.group, &resource.kind),
            old,
            new,
        )
        .await
    }

    /// Decoded object versions shared by every watch.
    pub fn decode_cache(&self) -> &crate::stored::DecodeCache {
        &self.decoded
    }

    /// The admission chain writes pass through; add plugins here.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The object and its revision, or `None`.
    pub async fn find(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> Result<Option<Current>> {
        let Some(kv) = self.store.get(key(resource, namespace, name)).await? else {
            return Ok(None);
        };
        Ok(Some(Current {
            object: decode(resource, &kv.value, kv.mod_revision)?,
            mod_revision: kv.mod_revision,
        }))
    }

    pub async fn get(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> Result<Current> {
        self.find(resource, namespace, name)
            .await?
            .ok_or_else(|| ApiError::NotFound(subject(resource, name)))
    }

    /// One page of objects, filtered by the selectors, at one revision.
    pub async fn list(&self, resource: &Resource, namespace: Option<&str>, options: &ListOptions) -> Result<ListPage> {
        let prefix = prefix(resource, namespace);
        let (mut revision, mut start) = match &options.continue_token {
            Some(token) => {
                let (revision, start) = decode_continue(token)?;
                (revision, format!("{prefix}{start}"))
            }
            None => (0, prefix.clone()),
        };
        let mut consistency = ReadConsistency::Linearizable;
        if revision == 0 {
            match (
                options.resource_version.as_deref(),
                options.resource_version_match.as_deref(),
            ) {
                (None | Some(""), _) => {}
                (Some(rv), Some("Exact")) => revision = parse_revision(rv)?,
                (Some("0"), _) => consistency = ReadConsistency::Serializable,
                (Some(rv), None | Some("NotOlderThan")) => {
                    let wanted = parse_revision(rv)?;
                    consistency = ReadConsistency::Serializable;
                    if self.store.revision() < wanted {
                        self.store.read_barrier().await?;
                    }
                    if self.store.revision() < wanted {
                        return Err(ApiError::BadRequest(format!("Too large resource version: {wanted}")));
                    }
                }
                (Some(_), Some(other)) => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported resourceVersionMatch: {other:?}"
                    )));
                }
            }
        }
        let end = skiff_store::prefix_end(prefix.as_bytes()).unwrap_or_default();
        let limit = options.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut continue_token = None;
        loop {
            let chunk = limit
                .map(|l| (l - items.len()).max(1))
                .unwrap_or(LIST_CHUNK)
                .min(LIST_CHUNK);
            let request = RangeRequest::new(KeyRange::between(start.as_bytes().to_vec(), end.clone()))
                .at_revision(revision)
                .limit(chunk);
            let page = self.store.range(request, consistency).await.map_err(|error| match error {
                skiff_store::Error::Compacted { .. } if options.continue_token.is_some() => ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
                        .into(),
                ),
                other => other.into(),
            })?;
            revision = page.revision;
            let mut last_key = None;
            let mut stopped_early = false;
            for (index, kv) in page.kvs.iter().enumerate() {
                last_key = Some(kv.key.clone());
                let object = decode(resource, &kv.value, kv.mod_revision)?;
                if self.matches(resource, &object, options)? {
                    items.push(object);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    stopped_early = index + 1 < page.kvs.len();
                    break;
                }
            }
            let Some(mut next) = last_key else { break };
            // The smallest key after the last one read.
            next.push(0);
            if limit.is_some_and(|l| items.len() >= l) {
                if stopped_early || page.more {
                    let rest = String::from_utf8_lossy(&next[prefix.len()..]).into_owned();
                    continue_token = Some(encode_continue(revision, &rest));
                }
                break;
            }
            if !page.more {
                break;
            }
            start = String::from_utf8_lossy(&next).into_owned();
        }
        Ok(ListPage {
            items,
            revision,
            continue_token,
        })
    }

    /// Whether an object passes the list's selectors.
    pub fn matches(&self, resource: &Resource, object: &Value, options: &ListOptions) -> Result<bool> {
        if let Some(selector) = &options.label_selector
            && !selector.matches(&meta::labels(object))
        {
            return Ok(false);
        }
        if let Some(selector) = &options.field_selector {
            let matched = selector
                .matches_with(|field| resource.ops.field_value(object, field))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if !matched {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Creates an object. `object` has passed decoding and field validation;
    /// here it gets its server-set metadata, defaults, validation and
    /// admission, and is written if its name is free.
    pub async fn create(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Value> {
        strategy::check_type_meta(resource, &mut object)?;
        strategy::check_namespace(resource, namespace, &mut object)?;
        if meta::resource_version(&object).is_some() {
            return Err(ApiError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        let generate_name = meta::str_field(&object, &["metadata", "generateName"]).map(String::from);
        let fixed_name = meta::name(&object).map(String::from);
        if fixed_name.is_none() && generate_name.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                &resource.group,
                &resource.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        if let Some(ns) = namespace.filter(|_| resource.namespaced) {
            self.check_namespace_open(ns).await?;
        }
        strategy::prepare_for_create(resource, &mut object, options);
        if is_core(resource, "pods") {
            self.admit_service_account(namespace.unwrap_or_default(), &mut object)
                .await?;
        }
        for _ in 0..MAX_GENERATE_NAME_ATTEMPTS {
            let name = match &fixed_name {
                Some(name) => name.clone(),
                None => strategy::generate_name(generate_name.as_deref().unwrap_or_default()),
            };
            meta::metadata_mut(&mut object).insert("name".into(), Value::String(name.clone()));
            let attributes = Attributes {
                operation: Operation::Create,
                resource,
                subresource: None,
                namespace,
                name: &name,
                user: &options.user,
                dry_run: options.dry_run,
            };
            let mut object = object.clone();
            self.admit(&attributes, &mut object, None)?;
            let reserved = match self.reservations(resource, None, Some(&mut object)).await {
                Ok(reserved) => reserved,
                // An object that exists holds its own addresses: say that.
                Err(_) if fixed_name.is_some() && self.store.get(key(resource, namespace, &name)).await?.is_some() => {
                    return Err(ApiError::AlreadyExists(subject(resource, &name)));
                }
                Err(error) => return Err(error),
            };
            record_ownership(resource, Part::Main, None, &mut object, options);
            if options.dry_run {
                return Ok(object);
            }
            let key = key(resource, namespace, &name);
            let response = self
                .store
                .txn(
                    Txn::new()
                        .when(std::iter::once(Compare::absent(key.clone())).chain(reserved.compares()))
                        .and_then(
                            std::iter::once(TxnOp::put(key.clone(), encode(resource, &object)?)).chain(reserved.ops()),
                        ),
                )
                .await?;
            if response.succeeded {
                meta::set_resource_version(&mut object, response.revision);
                if crd::is_crd(resource) {
                    crd::reconcile(&self.catalog, None, Some(&object));
                }
                if is_core(resource, "namespaces") {
                    self.furnish_namespace(&name).await;
                }
                return Ok(object);
            }
            if !reserved.is_empty() && self.store.get(key).await?.is_none() {
                // Another write took an address first: choose again.
                continue;
            }
            if fixed_name.is_some() {
                return Err(ApiError::AlreadyExists(subject(resource, &name)));
            }
        }
        Err(ApiError::AlreadyExists(subject(
            resource,
            generate_name.as_deref().unwrap_or_default(),
        )))
    }

    /// The ServiceAccount admission step ([`crate::auth::service_account`]):
    /// the pod's account must exist; the pod gets its name and, unless it
    /// opts out, the token volume.
    async fn admit_service_account(&self, namespace: &str, pod: &mut Value) -> Result<()> {
        use crate::auth::service_account;
        let Some(account_name) = service_account::account_name(pod) else {
            return Ok(());
        };
        let Some(accounts) = self.catalog.lookup("", "v1", "serviceaccounts") else {
            return Ok(());
        };
        let Some(account) = self.find_local_first(&accounts, Some(namespace), &account_name).await? else {
            let pod_name = meta::name(pod)
                .or_else(|| meta::str_field(pod, &["metadata", "generateName"]))
                .unwrap_or_default();
            return Err(service_account::missing(pod_name, namespace, &account_name));
        };
        let suffix = strategy::generate_name("");
        service_account::mutate(pod, &account, &suffix);
        Ok(())
    }

    /// What a namespace is created with, as kube-controller-manager's
    /// service-account and root-CA publisher controllers would add it
    /// moments later: the `default` ServiceAccount and `kube-root-ca.crt`.
    /// Written here at once, so that a pod created right after its
    /// namespace finds its account; the controllers keep them from then
    /// on (and put them back after a failure here, which is only logged).
    async fn furnish_namespace(&self, namespace: &str) {
        use crate::auth::service_account::{DEFAULT_ACCOUNT, ROOT_CA_CONFIG_MAP, ROOT_CA_KEY};
        let mut objects = vec![(
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_ACCOUNT}}),
        )];
        if let Some(ca) = &self.root_ca {
            objects.push((
                "configmaps",
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP},
                    "data": {ROOT_CA_KEY: ca.as_ref()},
                }),
            ));
        }
        let options = WriteOptions {
            user: skiff_auth::UserInfo::apiserver(),
            ..WriteOptions::default()
        };
        for (plural, object) in objects {
            let Some(resource) = self.catalog.lookup("", "v1", plural) else {
                continue;
            };
            match Box::pin(self.create(&resource, Some(namespace), object, &options)).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(error) => tracing::warn!(%namespace, %plural, %error, "cannot furnish the new namespace"),
            }
        }
    }

    /// An object from this replica's view of the store, or, when that
    /// misses, from a linearizable read: for checks of objects that exist
    /// long before the write that needs them (a namespace, a pod's
    /// ServiceAccount), as kube-apiserver's admission reads its informers
    /// first.
    async fn find_local_first(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let local = self
            .store
            .range(
                RangeRequest::new(KeyRange::key(key(resource, namespace, name))),
                ReadConsistency::Serializable,
            )
            .await?
            .kvs
            .into_iter()
            .next()
            .map(|kv| decode(resource, &kv.value, kv.mod_revision))
            .transpose()?;
        match local {
            Some(object) => Ok(Some(object)),
            None => Ok(self.find(resource, namespace, name).await?.map(|c| c.object)),
        }
    }

    /// Mutating admission, the kind's validation (again, on what the
    /// plugins made of the object), then validating admission.
    fn admit(&self, attributes: &Attributes<'_>, object: &mut Value, old: Option<(&Value, Part)>) -> Result<()> {
        if self.admission.mutate(attributes, object, old.map(|(o, _)| o))? {
            // Plugins may add what the kind does not know, or drop defaults.
            let (canonical, _) =
                crate::body::canonicalize(attributes.resource, object.take(), FieldValidation::Ignore)?;
            *object = canonical;
            strategy::default(attributes.resource, object);
        }
        self.validate(attributes.resource, object, old)?;
        self.admission.validate(attributes, object, old.map(|(o, _)| o))
    }

    /// Strategy validation, and for CRDs the checks that need the catalog.
    fn validate(&self, resource: &Resource, object: &Value, old: Option<(&Value, Part)>) -> Result<()> {
        strategy::validate(resource, object, old)?;
        if crd::is_crd(resource) {
            let causes = crd::validate(object, &self.catalog);
            if !causes.is_empty() {
                let name = meta::name(object).unwrap_or_default();
                return Err(ApiError::invalid(&resource.group, &resource.kind, name, causes));
            }
        }
        Ok(())
    }

    /// Serves what a written CRD defines; when it is gone, stops serving
    /// its resources and deletes their objects.
    async fn crd_changed(&self, previous: &Value, current: Option<&Value>) -> Result<()> {
        crd::reconcile(&self.catalog, Some(previous), current);
        if current.is_none() {
            let group = previous
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = previous
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !group.is_empty() && !plural.is_empty() {
                let prefix = format!("/registry/{group}/{plural}/");
                self.store
                    .txn(Txn::new().and_then([TxnOp::Delete(KeyRange::prefix(prefix.into_bytes()))]))
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs `op`, with the reservations it takes and frees, if `key` was
    /// last written at `mod_revision`.
    async fn write_if_unchanged(
        &self,
        key: &str,
        mod_revision: u64,
        op: TxnOp,
        reserved: &Reservations,
    ) -> Result<skiff_store::TxnResponse> {
        let txn = Txn::new()
            .when(
                std::iter::once(Compare::mod_revision(key, CompareOp::Equal, mod_revision)).chain(reserved.compares()),
            )
            .and_then(std::iter::once(op).chain(reserved.ops()));
        Ok(self.store.txn(txn).await?)
    }

    /// Namespaced objects may only be created in a namespace that exists
    /// and is not terminating.
    async fn check_namespace_open(&self, namespace: &str) -> Result<()> {
        let Some(namespaces) = self.catalog.lookup("", "v1", "namespaces") else {
            return Ok(());
        };
        // Like kube-apiserver's namespace lifecycle check: this replica's
        // view first.
        let found = self.find_local_first(&namespaces, None, namespace).await?;
        match found {
            None => Err(ApiError::NotFound(Subject::new("", "namespaces", namespace))),
            Some(object) if meta::is_deleting(&object) => Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Reads the object, lets `change` compute its new state, and writes it
    /// if nothing else wrote in between. `change` sees the stored object
    /// (with its resourceVersion); when it returns an object carrying a
    /// resourceVersion, that version must still be current (409 otherwise);
    /// without one, a conflicting write is retried with a fresh read.
    pub async fn update<F>(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        options: &WriteOptions,
        mut change: F,
    ) -> Result<Value>
    where
        F: FnMut(&Value) -> Result<Value>,
    {
        let key = key(resource, namespace, name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = self.get(resource, namespace, name).await?;
            let mut desired = change(&current.object)?;
            strategy::check_type_meta(resource, &mut desired)?;
            strategy::check_namespace(resource, namespace, &mut desired)?;
            if let Some(body_name) = meta::name(&desired).filter(|n| *n != name) {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let precondition = meta::resource_version(&desired).map(parse_revision).transpose()?;
            if precondition.is_some_and(|rv| rv != current.mod_revision) {
                return Err(ApiError::conflict(subject(resource, name)));
            }
            let mut next = strategy::prepare_for_update(resource, part, &current.object, desired, options);
            let attributes = Attributes {
                operation: Operation::Update,
                resource,
                subresource: match part {
                    Part::Main if options.scale => Some("scale"),
                    Part::Main => None,
                    Part::Status => Some("status"),
                    Part::Binding => Some("binding"),
                },
                namespace,
                name,
                user: &options.user,
                dry_run: options.dry_run,
            };
            self.admit(&attributes, &mut next, Some((&current.object, part)))?;
            let finished = strategy::update_finishes_deletion(resource, &current.object, &next);
            let reserved = self
                .reservations(resource, Some(&current.object), (!finished).then_some(&mut next))
                .await?;
            record_ownership(resource, part, Some(&current.object), &mut next, options);
            meta::set_resource_version(&mut next, current.mod_revision);
            if next == current.object {
                return Ok(current.object);
            }
            if options.dry_run {
                return Ok(next);
            }
            let write = if finished {
                TxnOp::delete(key.clone())
            } else {
                TxnOp::put(key.clone(), encode(resource, &next)?)
            };
            let response = self
                .write_if_unchanged(&key, current.mod_revision, write, &reserved)
                .await?;
            if response.succeeded {
                meta::set_resource_version(&mut next, response.revision);
                if crd::is_crd(resource) {
                    self.crd_changed(&current.object, (!finished).then_some(&next)).await?;
                }
                return Ok(next);
            }
            if precondition.is_some() {
                return Err(ApiError::conflict(subject(resource, name)));
            }
        }
        Err(ApiError::conflict(subject(resource, name)))
    }

    /// Deletes an object, or marks it for deletion while finalizers (or a
    /// pod's grace period) hold it.
    pub async fn delete(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted> {
        let key = key(resource, namespace, name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = self.get(resource, namespace, name).await?;
            if let Some(uid) = &options.precondition_uid
                && meta::uid(&current.object) != Some(uid.as_str())
            {
                return Err(ApiError::Conflict {
                    subject: subject(resource, name),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&current.object).unwrap_or_default()
                    ),
                });
            }
            if let Some(rv) = &options.precondition_resource_version
                && *rv != current.mod_revision.to_string()
            {
                return Err(ApiError::Conflict {
                    subject: subject(resource, name),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.mod_revision
                    ),
                });
            }
            let attributes = Attributes {
                operation: Operation::Delete,
                resource,
                subresource: None,
                namespace,
                name,
                user: &options.user,
                dry_run: options.dry_run,
            };
            self.admission.validate(&attributes, &current.object, None)?;
            let marked = strategy::mark_for_deletion(resource, &current.object, options);
            let (op, outcome) = match marked {
                Some(mut next) if next != current.object => {
                    meta::set_resource_version(&mut next, current.mod_revision);
                    (
                        Some(TxnOp::put(key.clone(), encode(resource, &next)?)),
                        Deleted::Marked(next),
                    )
                }
                Some(unchanged) => (None, Deleted::Marked(unchanged)),
                None => (Some(TxnOp::delete(key.clone())), Deleted::Gone(current.object.clone())),
            };
            let Some(op) = op.filter(|_| !options.dry_run) else {
                return Ok(outcome);
            };
            let reserved = match &outcome {
                Deleted::Gone(_) => self.reservations(resource, Some(&current.object), None).await?,
                Deleted::Marked(_) => Reservations::default(),
            };
            let response = self
                .write_if_unchanged(&key, current.mod_revision, op, &reserved)
                .await?;
            if response.succeeded {
                return Ok(match outcome {
                    Deleted::Marked(mut object) => {
                        meta::set_resource_version(&mut object, response.revision);
                        Deleted::Marked(object)
                    }
                    Deleted::Gone(object) => {
                        if crd::is_crd(resource) {
                            self.crd_changed(&object, None).await?;
                        }
                        Deleted::Gone(object)
                    }
                });
            }
        }
        Err(ApiError::conflict(subject(resource, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, "b/c");
        assert_eq!(decode_continue(&token).unwrap(), (42, "b/c".to_string()));
        assert!(decode_continue("!!!").is_err());
        assert!(decode_continue(&encode_continue(0, "x")).is_err());
        assert!(decode_continue(&encode_continue(3, "../x")).is_err());
    }
}
