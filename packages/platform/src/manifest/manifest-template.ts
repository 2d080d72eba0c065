// The starter keelson.yaml that `keelson init` writes: one example service, with comments
// that point at the rest of the manifest.

const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A valid project name made from anything: lowercase, runs of other characters turned into "-". */
function projectNameFrom(text: string): string {
  const cleaned = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return NAME.test(cleaned) ? cleaned : "app";
}

/**
 * A commented starter manifest for a project. The name is made valid if it is not
 * ("My Shop" becomes "my-shop").
 *
 * @example
 * await writeFile("keelson.yaml", manifestTemplate("shop"));
 */
export function manifestTemplate(projectName: string): string {
  const project = projectNameFrom(projectName);
  // "-team" must still fit in 63 characters.
  const team = `${project.slice(0, 58).replace(/-+$/, "")}-team`;
  return `# keelson.yaml: the desired state of project "${project}".
# Every field is described in docs/manifest.md; \`keelson schema\` prints a JSON Schema
# for editor completion. Durations are written like 500ms, 10s, 2m, 1h or 30d.
version: 1
project: ${project}

# Where the control plane (API and dashboard) and the gateway listen. These are the defaults.
# controlPlane: { host: 127.0.0.1, port: 7070 }
# gateway: { host: 127.0.0.1, port: 8080, adminPort: 8081 }

# How replicas run: process (default), docker or kubernetes.
runtime: process

# Teams that own services. Once declared, every service's owner must be one of them.
teams:
  ${team}:
    members: []
    # contact: "#${project}"

services:
  web:
    owner: ${team}
    description: The first service of ${project}.
    # Folder of the service, relative to this file (keelson init writes a starter there).
    path: services/web
    # Shell commands run in that folder. build and test are optional.
    # build: npm run build
    # test: npm test
    start: node server.mjs  # must listen on the port given in $PORT
    # port: 9000            # first port (replica i gets port + i); omitted: Keelson picks free ports
    replicas: 1
    readiness: /health      # a GET here must answer 2xx before the replica gets traffic
    routes:
      - /                   # the gateway sends every path to this service
    # calls: [other]        # services this one may call through the gateway
    # env:
    #   LOG_LEVEL: info
    # More in docs/manifest.md: deploy, autoscale, resources, resilience, slos, secrets.
    # deploy: { strategy: rolling }
    # autoscale: { min: 1, max: 4, target: { inflight: 10 } }   # replicas from load
    # resources: { memory: 256mb }                             # restarted when over it
`;
}
