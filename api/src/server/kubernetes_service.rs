//! The `default/kubernetes` Service, through which pods reach the API, as
//! kube-apiserver keeps it: a ClusterIP at the first address of the
//! Service range, port 443 (`https`), no selector, and Endpoints and an
//! EndpointSlice that list the API servers. Each server adds its own
//! address when it starts; a server that is gone is not taken out (k8s
//! does that with leases, which skiff has not yet).
//!
//! The first Service address is kept for this Service as Kubernetes keeps
//! it. A data directory from before, where another Service already holds
//! that address, gets the Endpoints but no Service, and a warning.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::options::{Part, WriteOptions};

const NAMESPACE: &str = "default";
const NAME: &str = "kubernetes";
const PORT_NAME: &str = "https";

impl ApiServer {
    /// Creates the Service if it is missing and adds `address`, where this
    /// server answers, to its Endpoints and EndpointSlice.
    pub async fn register_endpoint(&self, address: SocketAddr) -> crate::Result<()> {
        let options = WriteOptions {
            user: UserInfo::apiserver(),
            ..Default::default()
        };
        if let (Some(resource), Some(ip)) = (
            self.catalog.lookup("", "v1", "services"),
            self.registry.service_ranges().cluster_ips.nth(1),
        ) {
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": NAME, "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "clusterIP": ip.to_string(),
                    "ports": [{"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": address.port()}],
                },
            });
            match self
                .registry
                .create(&resource, Some(NAMESPACE), service, &options)
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(ApiError::Invalid { causes, .. }) => {
                    tracing::warn!(?causes, %ip, "the kubernetes Service cannot have the range's first address");
                }
                Err(error) => return Err(error),
            }
        }
        let ip = address.ip().to_string();
        let port = json!({"name": PORT_NAME, "port": address.port(), "protocol": "TCP"});
        self.add_address(
            ("", "v1", "endpoints"),
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": NAME},
                   "subsets": [{"addresses": [], "ports": [port]}]}),
            "/subsets/0/addresses",
            json!({"ip": ip}),
            &options,
        )
        .await?;
        self.add_address(
            ("discovery.k8s.io", "v1", "endpointslices"),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": NAME, "labels": {"kubernetes.io/service-name": NAME}},
                   "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
                   "endpoints": [], "ports": [port]}),
            "/endpoints",
            json!({"addresses": [ip], "conditions": {"ready": true}}),
            &options,
        )
        .await
    }

    /// Adds `entry` to the list at `pointer` of `default/kubernetes` of
    /// `kind`, creating the object as `empty` first if there is none.
    async fn add_address(
        &self,
        (group, version, plural): (&str, &str, &str),
        empty: Value,
        pointer: &str,
        entry: Value,
        options: &WriteOptions,
    ) -> crate::Result<()> {
        let Some(resource) = self.catalog.lookup(group, version, plural) else {
            return Ok(());
        };
        match self.registry.create(&resource, Some(NAMESPACE), empty, options).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
        self.registry
            .update(&resource, Some(NAMESPACE), NAME, Part::Main, options, |current| {
                let mut next = current.clone();
                // Not a precondition: a racing server's write is retried.
                crate::meta::metadata_mut(&mut next).remove("resourceVersion");
                if let Some(Value::Array(entries)) = next.pointer_mut(pointer)
                    && !entries.contains(&entry)
                {
                    entries.push(entry.clone());
                }
                Ok(next)
            })
            .await
            .map(|_| ())
    }
}
