/** Strict reading of YAML configuration files (robot profiles, model configs), shared by libs and the app. */
export { type ConfigFileFailure, fieldPath, readYamlConfigFile, valueAt } from './yaml-config-file';
