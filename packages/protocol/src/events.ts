// Events: every state change is appended to the store's event log with who, what and when.

/** The kinds of event Keelson records; later features add kinds, never change them. */
export type EventKind =
  | "manifest.applied"
  | "service.created"
  | "service.changed"
  | "service.removed"
  | "build.started"
  | "build.succeeded"
  | "build.failed"
  | "release.created"
  | "replica.started"
  | "replica.ready"
  | "replica.unready"
  | "replica.exited"
  | "replica.restarting"
  | "replica.stopped"
  | "replica.adopted"
  | "replica.failed"
  | "service.scaled"
  | "traffic.changed"
  | "project.stopped"
  | "controlplane.started"
  | "controlplane.stopped"
  | "incident.opened"
  | "incident.resolved"
  | "pipeline.started"
  | "pipeline.succeeded"
  | "pipeline.failed"
  | "stage.started"
  | "stage.succeeded"
  | "stage.failed"
  | "release.deleted"
  | "deploy.refused"
  | "rollout.started"
  | "rollout.step"
  | "rollout.paused"
  | "rollout.promoted"
  | "rollout.analysis"
  | "flag.created"
  | "flag.changed"
  | "flag.deleted"
  | "flag.killed"
  | "rollout.aborted"
  | "rollout.succeeded"
  | "rollout.failed"
  | "rollback.started"
  | "rollback.succeeded"
  | "flag.scheduled"
  | "flag.schedule-cancelled"
  | "flag.schedule-failed"
  | "audit"
  | "token.created"
  | "token.revoked"
  | "secret.set"
  | "secret.deleted"
  | "vault.key-rotated"
  | "security.scanned"
  | "security.blocked"
  | "identity.issued"
  | "replica.memory-exceeded"
  | "autoscale.scaled"
  | "autoscale.held"
  | "service.activated"
  | "chaos.started"
  | "chaos.injected"
  | "chaos.stopped";

export interface KeelsonEvent {
  /** Monotonic sequence number assigned by the store. */
  seq: number;
  /** ISO-8601 time. */
  at: string;
  project: string;
  kind: EventKind;
  /** Who caused it: "user:<name>", "cli", "reconciler", "runtime". */
  actor: string;
  /** What it is about, e.g. "service/orders" or "replica/orders-2f1c-0". */
  subject: string;
  details: Record<string, unknown>;
}
