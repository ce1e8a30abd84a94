// Flex Consumption plan and the Python function app, running as the user-assigned identity.
//
// On Flex Consumption the language and its version live in functionAppConfig.runtime, not in the
// FUNCTIONS_WORKER_RUNTIME app setting, and the host version is managed by the platform (no
// FUNCTIONS_EXTENSION_VERSION); the plan rejects or ignores those settings, so none is set here.

@description('Name of the function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags for both; the app adds azd-service-name.')
param tags object

@description('Resource ID of the user-assigned identity the app runs as.')
param identityId string

@description('Client ID of that identity.')
param identityClientId string

@description('Name of the storage account for the Functions host.')
param storageAccountName string

@description('Blob endpoint of that account, with a trailing slash.')
param storageBlobEndpoint string

@description('Blob container the deployment package is uploaded to.')
param deploymentContainerName string

@description('Table endpoint for the chat history: CHAT_STORAGE_ENDPOINT.')
param chatStorageEndpoint string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Azure OpenAI endpoint.')
param openAiEndpoint string

@description('Azure OpenAI chat deployment name.')
param openAiChatDeployment string

@description('Azure OpenAI data-plane API version.')
param openAiApiVersion string

@description('Whether the app may trust the x-ms-client-principal header (only behind Static Web Apps or App Service authentication).')
param trustClientPrincipal bool

@description('What guards the app. appServiceAuthentication: App Service authentication with Entra ID, configured here. staticWebAppLink: a Static Web Apps link, which main.bicep makes. none: nothing, only while the app trusts no x-ms-client-principal. main.bicep passes its reason for refusing anything else, which stops the deployment before this module changes the app.')
@allowed([
  'none'
  'appServiceAuthentication'
  'staticWebAppLink'
])
param authentication string

@description('Client ID of the Entra app registration App Service authentication uses, with appServiceAuthentication.')
param authClientId string

@description('OpenID Connect issuer of that registration: https://login.microsoftonline.com/<tenant>/v2.0.')
param authOpenIdIssuer string

@description('System prompt; empty means the app default.')
param systemPrompt string

@description('Queue endpoint of the storage account, with a trailing slash: CHAT_QUEUE__queueServiceUri.')
param storageQueueEndpoint string

@description('Queue background responses wait in: CHAT_QUEUE_NAME.')
param backgroundQueueName string

@description('Functions auth level of the chat routes: CHAT_AUTH_LEVEL.')
@allowed([
  'function'
  'anonymous'
  'admin'
])
param authLevel string

@description('Comma-separated origins a browser may call the API from (CORS); empty allows none.')
param allowedOrigins string

@description('Tokens each owner may use per UTC day; 0 is no quota.')
@minValue(0)
param dailyTokenQuota int
param maxAnswerTokens string
param modelAliases string
param refuseInstructions bool

@description('Seconds one model call may take before the app answers 504.')
@minValue(1)
param modelTimeoutSeconds int

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Concurrent HTTP requests each instance takes before the platform adds one.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption is offered in some regions only and fails the deployment elsewhere; set zoneRedundant on the plan where the region supports it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_78:Flex Consumption rejects siteConfig.ftpsState (ARM error 51021) and serves no FTP; FTP and SCM basic-auth publishing are switched off by the basicPublishingCredentialsPolicies below, and azd deploys with an Entra ID token.
  //checkov:skip=CKV_AZURE_17:Callers are browsers behind Static Web Apps and bots holding a function key; requiring TLS client certificates would refuse both.
  //checkov:skip=CKV_AZURE_222:The chat API is called from the internet (Static Web Apps linked backend, bots); function keys or the Static Web Apps front door guard it. Add a private endpoint to close it.
  //checkov:skip=CKV_AZURE_212:numberOfWorkers belongs to fixed App Service plans; Flex Consumption scales per function between 0 and maximumInstanceCount.
  //checkov:skip=CKV_AZURE_213:App Service health check replaces instances of a fixed pool; Flex Consumption has no fixed pool and scales to zero. Probe GET /api/health from outside, e.g. an Application Insights availability test.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [
        {
          name: 'PYTHON_ENABLE_INIT_INDEXING'
          value: '1'
        }
        {
          name: 'AZURE_OPENAI_ENDPOINT'
          value: openAiEndpoint
        }
        {
          name: 'AZURE_OPENAI_CHAT_DEPLOYMENT'
          value: openAiChatDeployment
        }
        {
          name: 'AZURE_OPENAI_API_VERSION'
          value: openAiApiVersion
        }
        {
          name: 'CHAT_STORAGE_ENDPOINT'
          value: chatStorageEndpoint
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'CHAT_TRUST_CLIENT_PRINCIPAL'
          value: trustClientPrincipal ? 'true' : 'false'
        }
        {
          name: 'CHAT_SYSTEM_PROMPT'
          value: systemPrompt
        }
        {
          name: 'CHAT_AUTH_LEVEL'
          value: authLevel
        }
        {
          name: 'CHAT_ALLOWED_ORIGINS'
          value: allowedOrigins
        }
        {
          name: 'CHAT_DAILY_TOKEN_QUOTA'
          value: string(dailyTokenQuota)
        }
        {
          name: 'CHAT_MAX_ANSWER_TOKENS'
          value: maxAnswerTokens
        }
        {
          name: 'CHAT_MODEL_ALIASES'
          value: modelAliases
        }
        {
          name: 'CHAT_REFUSE_INSTRUCTIONS'
          value: refuseInstructions ? 'true' : 'false'
        }
        {
          name: 'CHAT_MODEL_TIMEOUT_SECONDS'
          value: string(modelTimeoutSeconds)
        }
        {
          // The queue trigger's identity-based connection CHAT_QUEUE, which the app's own queue client reads too.
          name: 'CHAT_QUEUE__queueServiceUri'
          value: storageQueueEndpoint
        }
        {
          name: 'CHAT_QUEUE__credential'
          value: 'managedidentity'
        }
        {
          name: 'CHAT_QUEUE__clientId'
          value: identityClientId
        }
        {
          name: 'CHAT_QUEUE_NAME'
          value: backgroundQueueName
        }
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
      ]
    }
  }
}

// App Service authentication with Microsoft Entra ID: the platform refuses a request without a
// signed-in user or a token for the app registration (401) before it reaches the app, and only
// the platform writes x-ms-client-principal, so the app can trust it (App Service also sets
// WEBSITE_AUTH_ENABLED=True, which the app checks). /api/health stays anonymous for probes; it
// reads no conversation. No client secret is configured: browser sign-in at /.auth/login/aad
// uses the ID token flow. The token store is off: the app reads only x-ms-client-principal.
resource appServiceAuthentication 'Microsoft.Web/sites/config@2024-04-01' = if (authentication == 'appServiceAuthentication') {
  //checkov:skip=CKV_AZURE_13:CKV_AZURE_13 reads the retired authsettings (v1) shape, properties.enabled; authsettingsV2 turns authentication on with platform.enabled, which CKV_AZURE_56 checks and passes.
  //checkov:skip=CKV_AZURE_63:HTTP logging is a property of the site's web config, not of this authsettingsV2 config; the app logs requests to Application Insights.
  //checkov:skip=CKV_AZURE_65:Detailed error messages are a property of the site's web config, not of this authsettingsV2 config.
  //checkov:skip=CKV_AZURE_66:Failed request tracing is a property of the site's web config, not of this authsettingsV2 config.
  //checkov:skip=CKV_AZURE_80:The .NET Framework version is a property of the site's web config, not of this authsettingsV2 config; the app is Python.
  //checkov:skip=CKV_AZURE_88:Azure Files mounts are a property of the site's web config, not of this authsettingsV2 config; the app mounts none.
  //checkov:skip=CKV_AZURE_222:Public network access is a property of the site, not of this authsettingsV2 config; the site's own skip of CKV_AZURE_222 gives the reason.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: authOpenIdIssuer
        }
        validation: {
          allowedAudiences: [
            authClientId
            'api://${authClientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

// Turn off basic-auth (user name and password) publishing over FTP and to the SCM site.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Name of the function app.')
output name string = functionApp.name

@description('Resource ID of the function app.')
output id string = functionApp.id

@description('Default host name of the function app.')
output defaultHostName string = functionApp.properties.defaultHostName

@description('HTTPS base URL of the function app.')
output url string = 'https://${functionApp.properties.defaultHostName}'
