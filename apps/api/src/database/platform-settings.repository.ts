import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { PlatformSettingEntity } from './entities';

/** Key-value facts about the installation, stored in `platform_settings`. */
@Injectable()
export class PlatformSettingsRepository {
  constructor(
    @InjectRepository(PlatformSettingEntity) private readonly repo: Repository<PlatformSettingEntity>,
  ) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.repo.findOneBy({ key });
    return row?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.repo.upsert({ key, value }, ['key']);
  }

  /** Stores `value` unless the key exists; returns what is stored. Safe against concurrent starts. */
  async setIfAbsent(key: string, value: string): Promise<string> {
    await this.repo.createQueryBuilder().insert().values({ key, value }).orIgnore().execute();
    return (await this.get(key)) ?? value;
  }
}
