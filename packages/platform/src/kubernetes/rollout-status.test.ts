// The rollout status of a Deployment, case by case as `kubectl rollout status` reads it.
import { describe, expect, it } from "vitest";
import { deploymentRolloutStatus, type DeploymentView } from "./rollout-status.js";

const at = (status: DeploymentView["status"], extra: Partial<DeploymentView> = {}): DeploymentView => ({
  metadata: { name: "orders-r-1", generation: 2 },
  spec: { replicas: 3 },
  status,
  ...extra,
});

describe("deploymentRolloutStatus", () => {
  it("waits while the controller has not observed the latest generation", () => {
    const s = deploymentRolloutStatus(at({ observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }));
    expect(s.state).toBe("progressing");
    expect(s.message).toBe('waiting for deployment "orders-r-1" spec update to be observed');
  });

  it("waits for new replicas to be updated", () => {
    const s = deploymentRolloutStatus(at({ observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3 }));
    expect(s).toEqual({ state: "progressing", message: 'waiting for deployment "orders-r-1" rollout to finish: 1 of 3 new replicas have been updated', desired: 3, updated: 1, available: 3 });
  });

  it("waits for old replicas to terminate", () => {
    expect(deploymentRolloutStatus(at({ observedGeneration: 2, replicas: 5, updatedReplicas: 3, availableReplicas: 3 })).message).toMatch(/2 old replicas are pending termination/);
  });

  it("waits for updated replicas to become available", () => {
    expect(deploymentRolloutStatus(at({ observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 1 })).message).toMatch(/1 of 3 updated replicas are available/);
  });

  it("is complete when every replica is updated and available", () => {
    const s = deploymentRolloutStatus(at({ observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3, conditions: [{ type: "Progressing", status: "True", reason: "NewReplicaSetAvailable" }] }));
    expect(s.state).toBe("complete");
    expect(s.message).toBe('deployment "orders-r-1" successfully rolled out');
  });

  it("fails when the progress deadline is exceeded, with the controller's message", () => {
    const s = deploymentRolloutStatus(
      at({ observedGeneration: 2, replicas: 3, updatedReplicas: 1, conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "orders-r-1-5d8" has timed out progressing.' }] }),
    );
    expect(s.state).toBe("failed");
    expect(s.message).toBe('deployment "orders-r-1" exceeded its progress deadline: ReplicaSet "orders-r-1-5d8" has timed out progressing.');
  });

  it("fails for a paused Deployment, which will not finish by itself", () => {
    expect(deploymentRolloutStatus(at({ observedGeneration: 2 }, { spec: { replicas: 3, paused: true } })).state).toBe("failed");
  });

  it("counts a Deployment scaled to zero as complete, and one without status as waiting", () => {
    expect(deploymentRolloutStatus(at({ observedGeneration: 2 }, { spec: { replicas: 0 } })).state).toBe("complete");
    expect(deploymentRolloutStatus({ metadata: { name: "x", generation: 1 } }).state).toBe("progressing");
  });
});
