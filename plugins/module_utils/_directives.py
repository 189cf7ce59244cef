# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The directives systemd knows in a [Service] section, for the validator (internal; data only).

The union of what systemd 252 (Debian 12) and systemd 257 (Debian 13), the versions the collection is tested on, list
under [Service] in ``systemd --dump-configuration-items``. Regenerate it from both images with::

    podman run --rm IMAGE sh -c '/lib/systemd/systemd --dump-configuration-items --no-pager' \\
      | awk '/^\\[/{s=$0} s=="[Service]" && /^[A-Z]/{split($0,a,"="); print a[1]}' | sort -u
"""

from __future__ import annotations

SERVICE_DIRECTIVES = frozenset((
    'AllowedCPUs', 'AllowedMemoryNodes', 'AmbientCapabilities', 'AppArmorProfile', 'BPFProgram', 'BindLogSockets',
    'BindPaths', 'BindReadOnlyPaths', 'BlockIOAccounting', 'BlockIODeviceWeight', 'BlockIOReadBandwidth',
    'BlockIOWeight', 'BlockIOWriteBandwidth', 'BusName', 'CPUAccounting', 'CPUAffinity', 'CPUQuota',
    'CPUQuotaPeriodSec', 'CPUSchedulingPolicy', 'CPUSchedulingPriority', 'CPUSchedulingResetOnFork', 'CPUShares',
    'CPUWeight', 'CacheDirectory', 'CacheDirectoryMode', 'CapabilityBoundingSet', 'ConfigurationDirectory',
    'ConfigurationDirectoryMode', 'CoredumpFilter', 'CoredumpReceive', 'DefaultMemoryLow', 'DefaultMemoryMin',
    'DefaultStartupMemoryLow', 'Delegate', 'DelegateSubgroup', 'DeviceAllow', 'DevicePolicy', 'DisableControllers',
    'DynamicUser', 'Environment', 'EnvironmentFile', 'ExecCondition', 'ExecPaths', 'ExecReload', 'ExecSearchPath',
    'ExecStart', 'ExecStartPost', 'ExecStartPre', 'ExecStop', 'ExecStopPost', 'ExitType', 'ExtensionDirectories',
    'ExtensionImagePolicy', 'ExtensionImages', 'FailureAction', 'FileDescriptorStoreMax',
    'FileDescriptorStorePreserve', 'FinalKillSignal', 'Group', 'GuessMainPID', 'IOAccounting',
    'IODeviceLatencyTargetSec', 'IODeviceWeight', 'IOReadBandwidthMax', 'IOReadIOPSMax', 'IOSchedulingClass',
    'IOSchedulingPriority', 'IOWeight', 'IOWriteBandwidthMax', 'IOWriteIOPSMax', 'IPAccounting', 'IPAddressAllow',
    'IPAddressDeny', 'IPCNamespacePath', 'IPEgressFilterPath', 'IPIngressFilterPath', 'IgnoreSIGPIPE',
    'ImportCredential', 'InaccessibleDirectories', 'InaccessiblePaths', 'KeyringMode', 'KillMode', 'KillSignal',
    'LimitAS', 'LimitCORE', 'LimitCPU', 'LimitDATA', 'LimitFSIZE', 'LimitLOCKS', 'LimitMEMLOCK', 'LimitMSGQUEUE',
    'LimitNICE', 'LimitNOFILE', 'LimitNPROC', 'LimitRSS', 'LimitRTPRIO', 'LimitRTTIME', 'LimitSIGPENDING',
    'LimitSTACK', 'LoadCredential', 'LoadCredentialEncrypted', 'LockPersonality', 'LogExtraFields',
    'LogFilterPatterns', 'LogLevelMax', 'LogNamespace', 'LogRateLimitBurst', 'LogRateLimitIntervalSec',
    'LogsDirectory', 'LogsDirectoryMode', 'ManagedOOMMemoryPressure', 'ManagedOOMMemoryPressureDurationSec',
    'ManagedOOMMemoryPressureLimit', 'ManagedOOMPreference', 'ManagedOOMSwap', 'MemoryAccounting',
    'MemoryDenyWriteExecute', 'MemoryHigh', 'MemoryKSM', 'MemoryLimit', 'MemoryLow', 'MemoryMax', 'MemoryMin',
    'MemoryPressureThresholdSec', 'MemoryPressureWatch', 'MemorySwapMax', 'MemoryZSwapMax', 'MemoryZSwapWriteback',
    'MountAPIVFS', 'MountFlags', 'MountImagePolicy', 'MountImages', 'NFTSet', 'NUMAMask', 'NUMAPolicy',
    'NetworkNamespacePath', 'Nice', 'NoExecPaths', 'NoNewPrivileges', 'NonBlocking', 'NotifyAccess', 'OOMPolicy',
    'OOMScoreAdjust', 'OpenFile', 'PAMName', 'PIDFile', 'PassEnvironment', 'PermissionsStartOnly', 'Personality',
    'PrivateDevices', 'PrivateIPC', 'PrivateMounts', 'PrivateNetwork', 'PrivatePIDs', 'PrivateTmp', 'PrivateUsers',
    'ProcSubset', 'ProtectClock', 'ProtectControlGroups', 'ProtectHome', 'ProtectHostname', 'ProtectKernelLogs',
    'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectProc', 'ProtectSystem', 'ReadOnlyDirectories',
    'ReadOnlyPaths', 'ReadWriteDirectories', 'ReadWritePaths', 'RebootArgument', 'ReloadSignal', 'RemainAfterExit',
    'RemoveIPC', 'Restart', 'RestartForceExitStatus', 'RestartKillSignal', 'RestartMaxDelaySec', 'RestartMode',
    'RestartPreventExitStatus', 'RestartSec', 'RestartSteps', 'RestrictAddressFamilies', 'RestrictFileSystems',
    'RestrictNamespaces', 'RestrictNetworkInterfaces', 'RestrictRealtime', 'RestrictSUIDSGID', 'RootDirectory',
    'RootDirectoryStartOnly', 'RootEphemeral', 'RootHash', 'RootHashSignature', 'RootImage', 'RootImageOptions',
    'RootImagePolicy', 'RootVerity', 'RuntimeDirectory', 'RuntimeDirectoryMode', 'RuntimeDirectoryPreserve',
    'RuntimeMaxSec', 'RuntimeRandomizedExtraSec', 'SELinuxContext', 'SecureBits', 'SendSIGHUP', 'SendSIGKILL',
    'SetCredential', 'SetCredentialEncrypted', 'SetLoginEnvironment', 'Slice', 'SmackProcessLabel', 'SocketBindAllow',
    'SocketBindDeny', 'Sockets', 'StandardError', 'StandardInput', 'StandardInputData', 'StandardInputText',
    'StandardOutput', 'StartLimitAction', 'StartLimitBurst', 'StartLimitInterval', 'StartupAllowedCPUs',
    'StartupAllowedMemoryNodes', 'StartupBlockIOWeight', 'StartupCPUShares', 'StartupCPUWeight', 'StartupIOWeight',
    'StartupMemoryHigh', 'StartupMemoryLow', 'StartupMemoryMax', 'StartupMemorySwapMax', 'StartupMemoryZSwapMax',
    'StateDirectory', 'StateDirectoryMode', 'SuccessExitStatus', 'SupplementaryGroups', 'SyslogFacility',
    'SyslogIdentifier', 'SyslogLevel', 'SyslogLevelPrefix', 'SystemCallArchitectures', 'SystemCallErrorNumber',
    'SystemCallFilter', 'SystemCallLog', 'TTYColumns', 'TTYPath', 'TTYReset', 'TTYRows', 'TTYVHangup',
    'TTYVTDisallocate', 'TasksAccounting', 'TasksMax', 'TemporaryFileSystem', 'TimeoutAbortSec', 'TimeoutCleanSec',
    'TimeoutSec', 'TimeoutStartFailureMode', 'TimeoutStartSec', 'TimeoutStopFailureMode', 'TimeoutStopSec',
    'TimerSlackNSec', 'Type', 'UMask', 'USBFunctionDescriptors', 'USBFunctionStrings', 'UnsetEnvironment', 'User',
    'UtmpIdentifier', 'UtmpMode', 'WatchdogSec', 'WatchdogSignal', 'WorkingDirectory',
))
