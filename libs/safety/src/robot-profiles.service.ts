import { Inject, Injectable } from '@nestjs/common';
import type { RobotProfile } from './robot-profile';
import { loadRobotProfiles } from './robot-profile.loader';
import { RobotProfileError } from './robot-profile.schema';
import { SAFETY_OPTIONS, type SafetyModuleOptions } from './safety.options';

/**
 * The robot profiles, loaded and validated once when the module is built: an invalid one stops start-up
 * with a {@link RobotProfileError} naming its file and field.
 */
@Injectable()
export class RobotProfiles {
  private readonly byType: ReadonlyMap<string, RobotProfile>;

  constructor(@Inject(SAFETY_OPTIONS) options: SafetyModuleOptions) {
    if ('profiles' in options) {
      const map = new Map<string, RobotProfile>();
      for (const p of options.profiles) {
        if (map.has(p.robotType)) {
          throw new RobotProfileError(p.source, 'robot_type', `${p.robotType} is defined twice`);
        }
        map.set(p.robotType, p);
      }
      this.byType = map;
    } else {
      this.byType = loadRobotProfiles(options.robotsDir, options.cwd);
    }
  }

  /** The profile of `robotType`, or undefined for a robot type no profile describes. */
  get(robotType: string): RobotProfile | undefined {
    return this.byType.get(robotType);
  }

  /** Every robot type with a profile, sorted. */
  robotTypes(): string[] {
    return [...this.byType.keys()].sort();
  }

  /** Every profile, sorted by robot type. */
  list(): RobotProfile[] {
    return [...this.byType.values()].sort((a, b) => (a.robotType < b.robotType ? -1 : 1));
  }
}
