// Whether this process may make a write, as the API server's authorizer says: a
// SelfSubjectAccessReview (authorization.k8s.io/v1), asked at start and again every interval, so
// that a permission granted or taken away later (an opt-in ClusterRole applied or deleted) is
// seen without a restart. Callers read the last answer synchronously; the admission webhook
// must not wait on the API server for it.
//
// Creating a SelfSubjectAccessReview needs no grant of ours: kube-apiserver's bootstrap policy
// gives it to every authenticated user, ServiceAccounts included (ClusterRole system:basic-user,
// `create` on selfsubjectaccessreviews, bound to the group system:authenticated by the
// ClusterRoleBinding system:basic-user; plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.js';

/** What is asked: a verb on a resource, in every namespace. */
export interface AccessAttributes {
  verb: string;
  resource: string;
  /** The API group; '' for the core group. */
  group: string;
}

/** Asks the API server whether this process may do it; throws when it cannot tell. */
export type AccessReviewer = (a: AccessAttributes) => Promise<boolean>;

export function selfAccessReviewer(kc: KubeConfig): AccessReviewer {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  return async ({ verb, resource, group }) => {
    const body = { spec: { resourceAttributes: { verb, resource, group } } };
    const review = await authz.createSelfSubjectAccessReview({ body });
    return review.status?.allowed === true;
  };
}

export interface AccessCheckOptions {
  review: AccessReviewer;
  attributes: AccessAttributes;
  /** How often the answer is asked for again. */
  intervalMs: number;
  log: Logger;
  /** Said in the log when the permission is missing: what goes without it, and how to grant it. */
  without: string;
}

/**
 * The last answer to one access review. Until the first answer comes it says no: a caller that
 * acts on "allowed" commits to a write it could not make otherwise. A review that fails keeps the
 * last answer.
 */
export class AccessCheck {
  private answer = false;
  /** Whether the missing permission was said in the log since it was last seen granted. */
  private warned = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: AccessCheckOptions) {}

  allowed(): boolean {
    return this.answer;
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Asks again; never rejects. */
  async refresh(): Promise<void> {
    let allowed: boolean;
    try {
      allowed = await this.o.review(this.o.attributes);
    } catch (e) {
      this.o.log.warn('could not review access: keeping the last answer', {
        ...this.o.attributes,
        allowed: this.answer,
        error: (e as Error).message,
      });
      return;
    }
    this.set(allowed);
  }

  private set(allowed: boolean): void {
    const { verb, resource, group } = this.o.attributes;
    const what = `${verb} ${group ? `${resource}.${group}` : resource}`;
    if (allowed && !this.answer) {
      this.o.log.info(`may ${what}`, { verb, resource, group });
      this.warned = false;
    }
    if (!allowed && !this.warned) {
      this.o.log.warn(`NOT ALLOWED to ${what}: ${this.o.without}`, { verb, resource, group });
      this.warned = true;
    }
    this.answer = allowed;
  }
}
