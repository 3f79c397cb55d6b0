// Credentials bound to their destination, trust on first use as SSH's known hosts: the first origin
// a secret resource's credential is sent to is the only one it is sent to, unless the operator's
// secret_policy.destinations lists another. Checked (and recorded) for every new config before any
// secret backend is contacted, so a refused write never reaches a new origin with a live credential.
import type { DestinationBindings } from '../contracts';
import { configInvalid, type ConfigIssue } from '../errors';
import type { CredentialUse } from '../config/secret-policy';

/** What admitting a config did: the bindings it made, released if the config is refused after all. */
export interface Admission {
  /** Forget the bindings this admission made (the config was refused later: not built, not persisted). */
  release(): Promise<void>;
}

const NOTHING: Admission = { release: async () => undefined };

function refusal(u: CredentialUse, bound: string): ConfigIssue {
  return {
    path: u.path,
    message: `${u.credential} is bound to ${bound}, so it is not sent to ${u.destination}: a credential goes only to the address it was first used with. The operator allows ${u.destination} by adding it to secret_policy.destinations in the config file`,
  };
}

/**
 * Check every credential use of a new config against the bindings: one bound to another origin is
 * refused unless the policy allows its new origin. Unbound ones are bound to their origin now
 * (unless `record` is false: `gatehouse validate` only checks).
 * @throws GatehouseError GH_ERR_CONFIG_INVALID naming each refused credential, its bound origin and the way to allow more
 */
export async function admitDestinations(uses: readonly CredentialUse[], bindings: DestinationBindings, record = true): Promise<Admission> {
  if (uses.length === 0) return NOTHING;
  const bound = new Map(await bindings.list());
  const issues: ConfigIssue[] = [];
  const fresh: CredentialUse[] = [];
  for (const u of uses) {
    const b = bound.get(u.credential);
    if (b === undefined) {
      // first use: this config binds it (a second resource of the same config is checked against that)
      bound.set(u.credential, u.destination);
      fresh.push(u);
    } else if (b !== u.destination && !u.allowed) issues.push(refusal(u, b));
  }
  if (issues.length) throw configInvalid(issues);
  if (!record) return NOTHING;
  const made: string[] = [];
  const release = async () => {
    for (const c of made.splice(0)) await bindings.unbind(c).catch(() => false);
  };
  try {
    for (const u of fresh) {
      if (made.includes(u.credential)) continue;
      const now = await bindings.bind(u.credential, u.destination);
      if (now === u.destination) made.push(u.credential);
      // another node bound it first, elsewhere
      else if (!u.allowed) issues.push(refusal(u, now));
    }
  } catch (err) {
    await release();
    throw err;
  }
  if (issues.length) {
    await release();
    throw configInvalid(issues);
  }
  return { release };
}
