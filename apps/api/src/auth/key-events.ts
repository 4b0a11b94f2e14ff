import { Injectable } from '@nestjs/common';

type Listener = (event: KeyEvent) => void;

/** Something admins did that caches and metrics must learn at once. */
export type KeyEvent =
  | { readonly type: 'key_revoked'; readonly keyId: string }
  /** Its limits changed. */
  | { readonly type: 'key_changed'; readonly keyId: string }
  | {
      readonly type: 'tenant_changed';
      readonly tenantId: string;
      readonly tenantName: string;
      readonly disabled: boolean;
    };

/**
 * In-process notifications from the admin service to the verifier's cache and the metrics. Other
 * replicas learn within the cache TTL (documented), since they re-check the database when it expires.
 */
@Injectable()
export class KeyEvents {
  private readonly listeners: Listener[] = [];

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  keyRevoked(keyId: string): void {
    this.emit({ type: 'key_revoked', keyId });
  }

  keyChanged(keyId: string): void {
    this.emit({ type: 'key_changed', keyId });
  }

  tenantChanged(tenantId: string, tenantName: string, disabled: boolean): void {
    this.emit({ type: 'tenant_changed', tenantId, tenantName, disabled });
  }

  private emit(event: KeyEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}
