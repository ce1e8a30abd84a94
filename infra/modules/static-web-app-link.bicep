// Links the function app to an existing Static Web App (Standard plan) as its /api backend.
//
// Linking turns on App Service authentication on the function app, with the Static Web App as its
// only identity provider: from then on the function app answers only requests the Static Web App
// proxies, and those carry the signed-in user in x-ms-client-principal. main.bicep deploys this
// instead of its own App Service authentication, never both, since either replaces the other.

@description('Name of the Static Web App, in this resource group.')
param staticWebAppName string

@description('Resource ID of the function app to link.')
param backendResourceId string

@description('Region of the function app.')
param backendRegion string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' existing = {
  name: staticWebAppName
}

resource backend 'Microsoft.Web/staticSites/linkedBackends@2024-04-01' = {
  parent: staticWebApp
  name: 'backend'
  properties: {
    backendResourceId: backendResourceId
    region: backendRegion
  }
}
