// Environment variables Keelson sets in every replica it starts.

export const REPLICA_ENV = {
  /** Port the replica must listen on. */
  PORT: "PORT",
  /** The service's name. */
  SERVICE: "KEELSON_SERVICE",
  /** This replica's id. */
  REPLICA: "KEELSON_REPLICA",
  /** The release (content hash) this replica runs. */
  RELEASE: "KEELSON_RELEASE",
  /** The project's name. */
  PROJECT: "KEELSON_PROJECT",
  /** Base URL of the gateway; service-to-service calls go through it. */
  GATEWAY_URL: "KEELSON_GATEWAY_URL",
  /** A folder for the service's data that survives restarts and releases (shared by its replicas). */
  DATA_DIR: "KEELSON_DATA_DIR",
  /** Where the SDK sends its spans (OTLP/HTTP, the full URL: the control plane's /v1/traces); unset means no export. */
  OTLP_ENDPOINT: "KEELSON_OTLP_ENDPOINT",
  /** Base URL of the control plane, where the SDK's flag provider reads flags and their changes. */
  FLAGS_URL: "KEELSON_FLAGS_URL",
  /**
   * File holding the service's identity token (a JWT-SVID for spiffe://<project>/<service>, signed by
   * the control plane's CA). The SDK sends it to the gateway's mesh listener and to the control plane;
   * the control plane rewrites the file before the token expires, so readers re-read it.
   */
  IDENTITY_FILE: "KEELSON_IDENTITY_FILE",
  /** With mTLS: folder holding the replica's cert.pem, key.pem and the CA's ca.pem (rotated in place). */
  TLS_DIR: "KEELSON_TLS_DIR",
  /**
   * "1" for a service with `tls: true`: replicas serve HTTPS with the certificate in $KEELSON_TLS_DIR
   * and accept only clients with the gateway's or the control plane's certificate.
   */
  TLS_SERVE: "KEELSON_TLS_SERVE",
} as const;

/** The identity (SPIFFE path) of the control plane's client certificate, which probes replicas that serve TLS. */
export const CONTROL_PLANE_SERVICE_NAME = "keelson-controlplane";
