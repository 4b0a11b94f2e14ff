import { Command, CommanderError, Option } from 'commander';
import type { AccessAdminService } from '../auth/access-admin.service';
import {
  CreateKeySchema,
  CreateTenantSchema,
  UpdateKeySchema,
  UpdateTenantSchema,
} from '../auth/access.schemas';
import { type AppConfig, loadConfig } from '../config';
import { AppError } from '../errors/app-error';
import { type AdminSession, openAdminSession } from './admin-session';
import { EXIT, describeFailure, integerOption, limitOption, secretsOf, validate } from './cli-errors';
import { keyFields, keyTable, tenantFields, tenantTable } from './cli-output';

/** Where the CLI writes; the real one is process.stdout/stderr, tests capture it. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly io: CliIo;
  readonly version: string;
  readonly cwd?: string;
  /** Opens the database for one command; the default connects as the server does. */
  readonly openSession?: (config: AppConfig) => Promise<AdminSession>;
  readonly now?: () => Date;
}

/** The tenant limit options of `tenants create` and `tenants update`, by JSON field. */
const TENANT_LIMIT_OPTIONS = {
  daily_request_quota: '--daily-request-quota',
  requests_per_minute: '--requests-per-minute',
  tokens_per_minute: '--tokens-per-minute',
} as const;

interface TenantLimitOptions {
  dailyRequestQuota?: string;
  requestsPerMinute?: string;
  tokensPerMinute?: string;
}

export const KEY_SHOWN_ONCE = 'This is the only time the key is shown: store it now; it is not shown again.';

interface JsonOption {
  json?: boolean;
}

/** Refuses an update that names no option: it would change nothing. */
function requireSome(patch: Record<string, unknown>, options: readonly string[]): void {
  if (Object.values(patch).every((v) => v === undefined)) {
    throw new AppError('invalid_request', `Nothing to change: give at least one of ${options.join(', ')}.`);
  }
}

/**
 * Runs one command line (without `node` and the script) and resolves to the exit status. Errors are printed
 * as `error <code>: <message>` on stderr; nothing is thrown.
 */
export async function runCli(args: readonly string[], ctx: CliContext): Promise<number> {
  const state: { secrets: string[] } = { secrets: [] };
  const program = buildProgram(ctx, state);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    // Commander has already printed its message (or the help): only the status is left to decide.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const failure = describeFailure(error, state.secrets);
    ctx.io.err(`error ${failure.code}: ${failure.message}\n`);
    return failure.exitCode;
  }
}

function buildProgram(ctx: CliContext, state: { secrets: string[] }): Command {
  const now = ctx.now ?? (() => new Date());
  const print = (json: boolean | undefined, value: unknown, human: string) =>
    ctx.io.out(json === true ? `${JSON.stringify(value)}\n` : human);

  /** Loads the configuration and opens the database for one command; closes it whatever happens. */
  async function withAdmin<T>(fn: (admin: AccessAdminService) => Promise<T>): Promise<T> {
    const config = loadConfig(ctx.env, { version: ctx.version, cwd: ctx.cwd });
    state.secrets = secretsOf(config);
    const session = await (ctx.openSession ?? openAdminSession)(config);
    try {
      return await fn(session.admin);
    } finally {
      await session.close();
    }
  }

  async function tenantIdByName(admin: AccessAdminService, name: string): Promise<string> {
    const tenant = (await admin.listTenants()).find((t) => t.name === name);
    if (tenant === undefined) throw new AppError('not_found', `No tenant named ${name}.`);
    return tenant.id;
  }

  const program = new Command('vla-cli')
    .description('Manage tenants and API keys in the configured database (the server need not run).')
    .version(ctx.version)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
      // Usage errors follow the CLI's `error <code>: <message>` form too (exit status 2).
      outputError: (s, write) => write(s.replace(/^error: /, 'error invalid_request: ')),
    })
    .showHelpAfterError('(add --help for usage)')
    .allowExcessArguments(false);

  const json = () => new Option('--json', 'print JSON instead of a table');

  const tenants = program.command('tenants').description('create, list, update, disable and enable tenants');

  tenants
    .command('create')
    .description('create a tenant')
    .argument('<name>', 'lower-case letters, digits, - and _ (at most 64)')
    .option('--daily-request-quota <n>', 'requests per day (UTC); unset: no quota')
    .option('--requests-per-minute <n>', 'default rate limit of its keys; unset: the platform default')
    .option('--tokens-per-minute <n>', 'LLM tokens per minute for the tenant; unset: the platform default')
    .addOption(json())
    .action(async (name: string, opts: JsonOption & TenantLimitOptions) => {
      const input = validate(
        CreateTenantSchema,
        {
          name,
          daily_request_quota: integerOption(opts.dailyRequestQuota, '--daily-request-quota'),
          requests_per_minute: integerOption(opts.requestsPerMinute, '--requests-per-minute'),
          tokens_per_minute: integerOption(opts.tokensPerMinute, '--tokens-per-minute'),
        },
        { name: '<name>', ...TENANT_LIMIT_OPTIONS },
      );
      const tenant = await withAdmin((admin) => admin.createTenant(input));
      print(opts.json, tenant, `created tenant ${tenant.name}\n${tenantFields(tenant)}`);
    });

  tenants
    .command('update')
    .description(
      "change a tenant's limits (`none`: back to the platform default); running servers apply them within API_KEY_CACHE_TTL_MS",
    )
    .argument('<name>', 'the tenant')
    .option('--daily-request-quota <n>', 'requests per day (UTC), or none')
    .option('--requests-per-minute <n>', 'default rate limit of its keys, or none')
    .option('--tokens-per-minute <n>', 'LLM tokens per minute for the tenant, or none')
    .addOption(json())
    .action(async (name: string, opts: JsonOption & TenantLimitOptions) => {
      const limits = {
        daily_request_quota: limitOption(opts.dailyRequestQuota, '--daily-request-quota'),
        requests_per_minute: limitOption(opts.requestsPerMinute, '--requests-per-minute'),
        tokens_per_minute: limitOption(opts.tokensPerMinute, '--tokens-per-minute'),
      };
      requireSome(limits, Object.values(TENANT_LIMIT_OPTIONS));
      const patch = validate(UpdateTenantSchema, limits, TENANT_LIMIT_OPTIONS);
      const tenant = await withAdmin(async (admin) =>
        admin.updateTenant(await tenantIdByName(admin, name), patch),
      );
      print(opts.json, tenant, `updated tenant ${tenant.name}\n${tenantFields(tenant)}`);
    });

  tenants
    .command('list')
    .description('list every tenant')
    .addOption(json())
    .action(async (opts: JsonOption) => {
      const list = await withAdmin((admin) => admin.listTenants());
      print(opts.json, list, tenantTable(list));
    });

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    tenants
      .command(verb)
      .description(
        disabled
          ? 'disable a tenant: its keys get 403 (within API_KEY_CACHE_TTL_MS on a running server)'
          : 'enable a disabled tenant',
      )
      .argument('<name>', 'the tenant')
      .addOption(json())
      .action(async (name: string, opts: JsonOption) => {
        const patch = validate(UpdateTenantSchema, { disabled });
        const tenant = await withAdmin(async (admin) =>
          admin.updateTenant(await tenantIdByName(admin, name), patch),
        );
        print(opts.json, tenant, `tenant ${tenant.name} is ${tenant.disabled ? 'disabled' : 'enabled'}\n`);
      });
  }

  const keys = program.command('keys').description('create, list, update and revoke API keys');

  keys
    .command('create')
    .description('create an API key; the clear key is printed once, never again')
    .requiredOption('--tenant <name>', 'the tenant the key belongs to')
    .requiredOption('--scopes <list>', 'comma-separated: inference, ops, admin (admin implies the others)')
    .option('--name <label>', 'a label for people', 'cli')
    .option('--requests-per-minute <n>', "overrides the tenant's default")
    .option('--max-concurrent <n>', 'requests in flight at once')
    .option('--expires-at <iso>', 'ISO 8601 instant with offset, e.g. 2027-01-01T00:00:00Z')
    .addOption(json())
    .action(
      async (
        opts: JsonOption & {
          tenant: string;
          scopes: string;
          name: string;
          requestsPerMinute?: string;
          maxConcurrent?: string;
          expiresAt?: string;
        },
      ) => {
        const input = validate(
          CreateKeySchema,
          {
            tenant: opts.tenant,
            name: opts.name,
            scopes: opts.scopes
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s !== ''),
            requests_per_minute: integerOption(opts.requestsPerMinute, '--requests-per-minute'),
            max_concurrent: integerOption(opts.maxConcurrent, '--max-concurrent'),
            expires_at: opts.expiresAt,
          },
          {
            tenant: '--tenant',
            name: '--name',
            scopes: '--scopes',
            requests_per_minute: '--requests-per-minute',
            max_concurrent: '--max-concurrent',
            expires_at: '--expires-at',
          },
        );
        const created = await withAdmin((admin) => admin.createKey(input));
        ctx.io.err(`${KEY_SHOWN_ONCE}\n`);
        print(opts.json, created, keyFields(created, now()));
      },
    );

  keys
    .command('list')
    .description('list keys (never secrets or hashes)')
    .option('--tenant <name>', 'only this tenant’s keys')
    .addOption(json())
    .action(async (opts: JsonOption & { tenant?: string }) => {
      const list = await withAdmin((admin) => admin.listKeys(opts.tenant));
      print(opts.json, list, keyTable(list, now()));
    });

  keys
    .command('update')
    .description(
      "change a key's limits (`none`: back to the tenant's or the platform's default); running servers apply them within API_KEY_CACHE_TTL_MS",
    )
    .argument('<id>', 'the key id, as `keys list` shows it')
    .option('--requests-per-minute <n>', "overrides the tenant's default, or none")
    .option('--max-concurrent <n>', 'requests in flight at once, or none')
    .addOption(json())
    .action(async (id: string, opts: JsonOption & { requestsPerMinute?: string; maxConcurrent?: string }) => {
      const optionNames = {
        requests_per_minute: '--requests-per-minute',
        max_concurrent: '--max-concurrent',
      };
      const limits = {
        requests_per_minute: limitOption(opts.requestsPerMinute, '--requests-per-minute'),
        max_concurrent: limitOption(opts.maxConcurrent, '--max-concurrent'),
      };
      requireSome(limits, Object.values(optionNames));
      const patch = validate(UpdateKeySchema, limits, optionNames);
      const key = await withAdmin((admin) => admin.updateKey(id, patch));
      print(opts.json, key, `updated key ${key.id}\n${keyFields(key, now())}`);
    });

  keys
    .command('revoke')
    .description('revoke a key (idempotent); a running server refuses it within API_KEY_CACHE_TTL_MS')
    .argument('<id>', 'the key id, as `keys list` shows it')
    .addOption(json())
    .action(async (id: string, opts: JsonOption) => {
      const key = await withAdmin((admin) => admin.revokeKey(id));
      print(opts.json, key, `revoked key ${key.id} (tenant ${key.tenant}) at ${key.revoked_at ?? '-'}\n`);
    });

  return program;
}
