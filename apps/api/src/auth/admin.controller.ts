import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { AccessAdminService } from './access-admin.service';
import {
  type CreateKey,
  CreateKeySchema,
  type CreateTenant,
  CreateTenantSchema,
  type CreatedKey,
  CreatedKeySchema,
  type KeyView,
  KeyViewSchema,
  type TenantView,
  TenantViewSchema,
  TenantNameSchema,
  type UpdateKey,
  UpdateKeySchema,
  type UpdateTenant,
  UpdateTenantSchema,
} from './access.schemas';
import { RequireScope } from './auth.decorators';

const IdParam = z.string().regex(/^[0-9A-Za-z-]{1,36}$/, 'an id');
const KeyListQuery = z.strictObject({ tenant: TenantNameSchema.optional() });

/** Tenants and keys (scope admin). Lists never carry secrets or hashes; a clear key is returned once. */
@ApiTags('admin')
@ApiSecurity('api-key')
@RequireScope('admin')
@Controller('admin')
export class AdminController {
  constructor(private readonly admin: AccessAdminService) {}

  @Post('tenants')
  @ApiOperation({ summary: 'Create a tenant' })
  @ApiCreatedResponse({ standardSchema: TenantViewSchema })
  createTenant(@Body({ schema: CreateTenantSchema }) body: CreateTenant): Promise<TenantView> {
    return this.admin.createTenant(body);
  }

  @Get('tenants')
  @ApiOperation({ summary: 'List tenants' })
  @ApiOkResponse({ standardSchema: z.array(TenantViewSchema) })
  listTenants(): Promise<TenantView[]> {
    return this.admin.listTenants();
  }

  @Patch('tenants/:id')
  @ApiOperation({ summary: 'Change a tenant: disable it, or its limits' })
  @ApiOkResponse({ standardSchema: TenantViewSchema })
  updateTenant(
    @Param('id', { schema: IdParam }) id: string,
    @Body({ schema: UpdateTenantSchema }) body: UpdateTenant,
  ): Promise<TenantView> {
    return this.admin.updateTenant(id, body);
  }

  @Post('keys')
  @ApiOperation({ summary: 'Create a key; the response holds the clear key, once' })
  @ApiCreatedResponse({ standardSchema: CreatedKeySchema })
  createKey(@Body({ schema: CreateKeySchema }) body: CreateKey): Promise<CreatedKey> {
    return this.admin.createKey(body);
  }

  @Get('keys')
  @ApiOperation({ summary: 'List keys (never secrets or hashes)' })
  @ApiOkResponse({ standardSchema: z.array(KeyViewSchema) })
  listKeys(@Query({ schema: KeyListQuery }) query: z.infer<typeof KeyListQuery>): Promise<KeyView[]> {
    return this.admin.listKeys(query.tenant);
  }

  @Patch('keys/:id')
  @ApiOperation({ summary: "Change a key's limits (requests_per_minute, max_concurrent; null: the default)" })
  @ApiOkResponse({ standardSchema: KeyViewSchema })
  updateKey(
    @Param('id', { schema: IdParam }) id: string,
    @Body({ schema: UpdateKeySchema }) body: UpdateKey,
  ): Promise<KeyView> {
    return this.admin.updateKey(id, body);
  }

  @Delete('keys/:id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a key (it stops working everywhere within the cache TTL)' })
  @ApiOkResponse({ standardSchema: KeyViewSchema })
  revokeKey(@Param('id', { schema: IdParam }) id: string): Promise<KeyView> {
    return this.admin.revokeKey(id);
  }
}
